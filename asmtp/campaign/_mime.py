"""Rendered text to message bytes: header fields, addresses and text parts.

Rendering happens once per row, so the common case (an ASCII value on one short line, an
ASCII body) is written directly; anything else (non-ASCII, long lines) goes through the
email package's own folding and RFC 2047 encoding, or quoted-printable for bodies.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import re
from typing import Final

from ._errors import RenderError

__all__ = [
    "ADDRESS_HEADERS",
    "check_header_value",
    "encode_header",
    "header_addresses",
    "text_part",
    "unfold",
]

ADDRESS_HEADERS: Final = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
_ASCII_POLICY: Final = email.policy.SMTP
_UTF8_POLICY: Final = email.policy.SMTPUTF8
_FOLD_AT: Final = 78  # RFC 5322 §2.1.1: lines SHOULD be no longer than 78 characters
_MAX_LINE: Final = 998  # RFC 5322 §2.1.1: MUST be no longer than 998
_FOLDING: Final = re.compile(r"\r?\n(?=[ \t])")
# RFC 5322 §3.4: an addr-spec alone, or after a display name of plain words, in <>.
_ADDR_SPEC: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_MAILBOX: Final = re.compile(rf"(?:[A-Za-z0-9 ]*<({_ADDR_SPEC})>|({_ADDR_SPEC}))")


def unfold(value: str) -> str:
    """A header value from a file, its folding undone (RFC 5322 §2.2.3)."""
    return _FOLDING.sub("", value)


def check_header_value(name: str, value: str) -> None:
    """:class:`RenderError` when ``value`` would break out of its header field.

    A CR or LF rendered into a header (from a row's field) could add header fields of the
    row's choosing: header injection. NUL is refused too (RFC 5322 §2.2).
    """
    for bad, what in (("\r", "a line break"), ("\n", "a line break"), ("\0", "NUL")):
        if bad in value:
            raise RenderError(f"{name}: the rendered value holds {what}: {value[:60]!r}")


def header_addresses(name: str, value: str) -> list[str]:
    """The addr-specs of an address header's value; :class:`RenderError` when one is not
    an address of the form local@domain."""
    simple = _SIMPLE_MAILBOX.fullmatch(value)
    if simple is not None:  # the usual `Name <user@domain>`, parsed without the email package
        return [simple.group(1) or simple.group(2)]
    pairs = email.utils.getaddresses([value])
    found = [address for _, address in pairs]
    if not found or any(not _is_addr_spec(address) for address in found):
        raise RenderError(f"{name}: not an address (user@domain): {value[:80]!r}")
    return found


def _is_addr_spec(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(
        at and local and domain and "@" not in domain and "." not in (domain[0], domain[-1])
    )


def encode_header(name: str, value: str, *, addresses: list[str] | None = None) -> str:
    """``Name: value`` and its CRLF, folded and RFC 2047 encoded as needed.

    ASCII addresses keep the ASCII policy (encoded words for non-ASCII display names);
    a non-ASCII address needs SMTPUTF8 anyway, so its header is written as UTF-8
    (RFC 6532).
    """
    if value.isascii() and len(name) + 2 + len(value) <= _FOLD_AT and "=?" not in value:
        return f"{name}: {value}\r\n"
    policy = _ASCII_POLICY
    if addresses is not None and not all(address.isascii() for address in addresses):
        policy = _UTF8_POLICY
    try:
        folded: str = policy.header_factory(name, value).fold(policy=policy)
    except (ValueError, TypeError, IndexError) as exc:
        raise RenderError(f"{name}: cannot be encoded: {exc}") from exc
    return folded


def text_part(text: str, subtype: str) -> tuple[bytes, bytes]:
    """The content header lines and the encoded body of a ``text/<subtype>`` part.

    Line endings become CRLF. ASCII text with lines within RFC 5322's limit goes as it
    is (7bit); anything else as quoted-printable UTF-8 (RFC 2045 §6.7), which every server
    takes, with or without 8BITMIME.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    if text.isascii() and (len(text) <= _MAX_LINE or _longest_line(text) <= _MAX_LINE):
        body = text.replace("\n", "\r\n").encode("ascii")
        encoding = "7bit"
    else:
        body = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
        encoding = "quoted-printable"
    return _CONTENT_HEADERS[subtype, encoding], body


def _longest_line(text: str) -> int:
    return max(map(len, text.split("\n")))


_CONTENT_HEADERS: Final = {
    (subtype, encoding): (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n"
    ).encode("ascii")
    for subtype in ("plain", "html")
    for encoding in ("7bit", "quoted-printable")
}
