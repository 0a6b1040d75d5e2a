"""Typed ESMTP parameters for MAIL and RCPT.

Owns turning SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY and ORCPT into their wire form, with
xtext encoding where the RFC asks for it. Plain ``str``/``bytes`` parameters remain accepted
everywhere; these classes exist so that values are checked before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ._errors import BadArgument

__all__ = [
    "Body",
    "EnvId",
    "Notify",
    "Orcpt",
    "Param",
    "Ret",
    "Size",
    "SmtpUtf8",
    "body_type",
    "declares_binary",
    "param_bytes",
    "xtext",
]


def xtext(value: str | bytes) -> bytes:
    """Encode ``value`` as RFC 3461 §4 xtext.

    ``xtext = *( xchar / hexchar )``: bytes from ``!`` to ``~`` except ``+`` and ``=`` stand
    for themselves, everything else becomes ``+XX``.
    """
    raw = value.encode("utf-8") if isinstance(value, str) else value
    out = bytearray()
    for byte in raw:
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(byte)
        else:
            out += b"+%02X" % byte
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Size:
    """``SIZE=n`` (RFC 1870): the message size in bytes, declared in MAIL."""

    size: int

    def __bytes__(self) -> bytes:
        if self.size < 0:
            raise BadArgument(f"SIZE must not be negative, got {self.size}")
        return b"SIZE=%d" % self.size


@dataclass(frozen=True, slots=True)
class Body:
    """``BODY=7BIT|8BITMIME|BINARYMIME`` (RFC 6152, RFC 3030) in MAIL."""

    value: Literal["7BIT", "8BITMIME", "BINARYMIME"]

    def __bytes__(self) -> bytes:
        if self.value not in ("7BIT", "8BITMIME", "BINARYMIME"):
            raise BadArgument(f"unknown BODY value {self.value!r}")
        return b"BODY=" + self.value.encode("ascii")


@dataclass(frozen=True, slots=True)
class SmtpUtf8:
    """``SMTPUTF8`` (RFC 6531) in MAIL: addresses and headers may be UTF-8."""

    def __bytes__(self) -> bytes:
        return b"SMTPUTF8"


@dataclass(frozen=True, slots=True)
class Ret:
    """``RET=FULL|HDRS`` (RFC 3461 §4.3) in MAIL: what a DSN returns of the message."""

    value: Literal["FULL", "HDRS"]

    def __bytes__(self) -> bytes:
        if self.value not in ("FULL", "HDRS"):
            raise BadArgument(f"RET must be FULL or HDRS, got {self.value!r}")
        return b"RET=" + self.value.encode("ascii")


@dataclass(frozen=True, slots=True)
class EnvId:
    """``ENVID=xtext`` (RFC 3461 §4.4) in MAIL: an envelope id echoed in DSNs."""

    value: str

    def __bytes__(self) -> bytes:
        if not self.value.isascii() or not self.value.isprintable():
            raise BadArgument(f"ENVID must be printable ASCII, got {self.value!r}")
        return b"ENVID=" + xtext(self.value)


NotifyWhen = Literal["SUCCESS", "FAILURE", "DELAY"]


@dataclass(frozen=True, slots=True)
class Notify:
    """``NOTIFY=NEVER`` or a list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1) in RCPT.

    An empty tuple means ``NEVER``.
    """

    when: tuple[NotifyWhen, ...] = ()

    def __bytes__(self) -> bytes:
        if not self.when:
            return b"NOTIFY=NEVER"
        for item in self.when:
            if item not in ("SUCCESS", "FAILURE", "DELAY"):
                raise BadArgument(f"unknown NOTIFY condition {item!r}")
        if len(set(self.when)) != len(self.when):
            raise BadArgument(f"repeated NOTIFY condition in {self.when!r}")
        return b"NOTIFY=" + ",".join(self.when).encode("ascii")


@dataclass(frozen=True, slots=True)
class Orcpt:
    """``ORCPT=addr-type;xtext`` (RFC 3461 §4.2) in RCPT: the original recipient."""

    address: str
    addr_type: str = "rfc822"

    def __bytes__(self) -> bytes:
        if not self.addr_type.isascii() or not self.addr_type.replace("-", "").isalnum():
            raise BadArgument(f"bad ORCPT address type {self.addr_type!r}")
        if "utf-8" == self.addr_type.lower():
            raise BadArgument("ORCPT utf-8 addresses need RFC 6533 encoding; pass bytes")
        return b"ORCPT=" + self.addr_type.encode("ascii") + b";" + xtext(self.address)


Param = str | bytes | Size | Body | SmtpUtf8 | Ret | EnvId | Notify | Orcpt
"""A MAIL or RCPT parameter: typed, or as text or bytes (``"SIZE=1000"``), sent as given."""


def param_bytes(param: Param, encoding: str = "ascii") -> bytes:
    """The wire form of one parameter, plain or typed; raises :class:`BadArgument`."""
    if isinstance(param, bytes):
        return param
    if isinstance(param, str):
        try:
            return param.encode(encoding)
        except UnicodeEncodeError:
            raise BadArgument(f"parameter {param!r} is not {encoding}") from None
    if isinstance(param, (Size, Body, SmtpUtf8, Ret, EnvId, Notify, Orcpt)):
        return bytes(param)
    raise BadArgument(f"unsupported ESMTP parameter {param!r}")  # pragma: no cover - typing


def body_type(params: Iterable[Param]) -> str | None:
    """The ``BODY=`` value among MAIL parameters, upper-cased, or ``None`` if none sets it."""
    for param in params:
        if isinstance(param, Body):
            return param.value.upper()
        if isinstance(param, (str, bytes)):
            text = param.decode("ascii", "replace") if isinstance(param, bytes) else param
            name, equals, value = text.partition("=")
            if equals and name.strip().upper() == "BODY":
                return value.strip().upper()
    return None


def declares_binary(params: bytes | tuple[bytes, ...]) -> bool:
    """Whether MAIL parameters (or a raw MAIL line) declare BODY=BINARYMIME (RFC 3030 §3)."""
    text = params if isinstance(params, bytes) else b" ".join(params)
    # find, not `in`: on Python 3.11 bytes.__contains__ raises and clears a TypeError first.
    return text.upper().find(b"BODY=BINARYMIME") != -1
