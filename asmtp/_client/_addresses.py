"""Address handling at the facade's edge, as smtplib does it.

Owns extracting the bare address from what a caller passes (``"Name <a@b>"``, ``"<a@b>"``,
``"a@b"``) and encoding it for the wire: ASCII, or UTF-8 when SMTPUTF8 is in use.
"""

from __future__ import annotations

import email.utils
import re

from ..errors import SMTPNotSupportedError
from ..protocol import BadArgument

__all__ = ["bare_address", "encode_address", "is_bare", "needs_smtputf8", "wire_address"]

# Characters that make an address more than a bare local@domain for parseaddr: its
# specials but "@" and ".", and any whitespace (it strips or splits on it).
_SPECIALS = r'\s<>"(),;:\[\]\\'
_NEEDS_PARSING = re.compile(f"[{_SPECIALS}]")
# The same and NUL: an address with none of them is bare and holds no CR, LF or NUL.
_NOT_PLAIN = re.compile(f"[{_SPECIALS}\\0]")


def is_bare(address: str) -> bool:
    """Whether ``address`` is already a bare ``local@domain``: nothing in it that a parser
    would strip, split on or treat as a display name."""
    return bool(address) and _NEEDS_PARSING.search(address) is None


def bare_address(address: str) -> str:
    """The address inside ``address``, as smtplib's ``quoteaddr`` finds it, without brackets.

    An empty string and ``<>`` give the null reverse-path ``""``. CR, LF or NUL anywhere
    raise :class:`~asmtp.protocol.BadArgument` (a ``ValueError``) before parsing, which
    could otherwise drop them along with whatever they were meant to smuggle.
    """
    if "\r" in address or "\n" in address or "\0" in address:
        raise BadArgument(f"address contains CR, LF or NUL: {address[:80]!r}")
    if is_bare(address):
        return address  # parseaddr would return it unchanged
    name, addr = email.utils.parseaddr(address)
    if (name, addr) == ("", ""):
        # parseaddr could not parse it: use it as is, as smtplib does.
        stripped = address.strip()
        if stripped.startswith("<") and stripped.endswith(">"):
            return stripped[1:-1]
        return address
    return addr


def needs_smtputf8(*addresses: str) -> bool:
    """True when any address has a non-ASCII character (RFC 6531)."""
    return not all(address.isascii() for address in addresses)


def encode_address(address: str, *, utf8: bool) -> bytes:
    """Encode a bare address; raises :class:`SMTPNotSupportedError` if it needs SMTPUTF8."""
    if address.isascii():
        return address.encode("ascii")
    if not utf8:
        raise SMTPNotSupportedError(
            f"address {address!r} is not ASCII: it needs SMTPUTF8, which is not in use "
            "(the server does not advertise it, or the SMTPUTF8 option was not given)"
        )
    return address.encode("utf-8")


def wire_address(address: str, *, utf8: bool) -> bytes:
    """The bare address in ``address`` encoded for the wire: :func:`encode_address` of
    :func:`bare_address`, in one step for a plain ASCII ``local@domain``."""
    if address.isascii() and address and _NOT_PLAIN.search(address) is None:
        return address.encode("ascii")
    return encode_address(bare_address(address), utf8=utf8)
