"""Addresses as callers give them: which need the email parser, and what it would find.

``is_bare`` lets a plain ``local@domain`` skip :func:`email.utils.getaddresses` and
:func:`email.utils.parseaddr`; the property below holds it to what the parser finds.
"""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from asmtp._client._addresses import bare_address, is_bare
from asmtp._client._checks import recipients

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
