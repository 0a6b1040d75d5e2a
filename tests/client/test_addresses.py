"""Addresses as callers give them: which need the email parser, and what it would find.

``is_bare`` lets a plain ``local@domain`` skip :func:`email.utils.getaddresses` and
:func:`email.utils.parseaddr`; the property below holds it to what the parser finds.
"""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from asmtp._client._addresses import bare_address, encode_address, is_bare, wire_address
from asmtp._client._checks import recipients
from asmtp.errors import SMTPNotSupportedError

# Mostly what plain addresses are made of, sometimes a special, whitespace or a line end.
_PLAIN = "ab@.x-_+\x0b\x0c\x1f\x7f\x85\xa0\u2028\u00fc"
_SPECIAL = ' <>,;:"()[]\\\t\r\n'
_CHARS = st.sampled_from(_PLAIN * 8 + _SPECIAL)


@pytest.mark.parametrize("address", ["a@x.test", "first.last+tag@x.test", "ü@x.test", "a"])
def test_a_plain_address_is_bare(address: str) -> None:
    assert is_bare(address)
    assert recipients(address) == (address,)
    assert bare_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "<a@x.test>",
        "Ada <a@x.test>",
        "a@x.test, b@x.test",
        "a@x.test;b@x.test",
        "a@x.test b@x.test",
        "a@x.test:b@x.test",
        '"a b"@x.test',
        "a@x.test\r\nb@x.test",
    ],
)
def test_anything_the_parser_might_split_or_strip_is_not_bare(address: str) -> None:
    assert not is_bare(address)


@given(st.lists(_CHARS, max_size=24).map("".join))
def test_a_bare_address_is_one_address_and_itself_to_the_parser(text: str) -> None:
    """What skips the parser is exactly what the parser would have kept whole."""
    assume(is_bare(text))
    found = [address for _, address in email.utils.getaddresses([text]) if address]
    assert len(found) <= 1
    assert email.utils.parseaddr(text)[1] in (text, "")


def _encoded(address: str, *, utf8: bool) -> bytes | str:
    """:func:`encode_address` of :func:`bare_address`, or the error's type and text."""
    try:
        return encode_address(bare_address(address), utf8=utf8)
    except (ValueError, SMTPNotSupportedError) as exc:
        return f"{type(exc).__name__}: {exc}"


@given(st.lists(st.sampled_from(_PLAIN * 8 + _SPECIAL + "\0"), max_size=24).map("".join))
@example("a@x.test")
@example("a\0@x.test")
@example("ü@x.test")
@example("")
def test_wire_address_is_the_encoded_bare_address(text: str) -> None:
    """The one-step path for plain ASCII gives what parsing then encoding gives, errors too."""
    for utf8 in (False, True):
        try:
            wire: bytes | str = wire_address(text, utf8=utf8)
        except (ValueError, SMTPNotSupportedError) as exc:
            wire = f"{type(exc).__name__}: {exc}"
        assert wire == _encoded(text, utf8=utf8)
