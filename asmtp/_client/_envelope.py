"""From what a caller asks to send to exactly what goes on the wire, in one place.

:class:`Outgoing` is a message as given (``sendmail``'s arguments, or ``send_message``'s);
:func:`resolve` turns it into an :class:`Envelope` against the session's extensions: the
MAIL and RCPT commands with every parameter (SIZE, SMTPUTF8, BODY), the body source and its
framing. ``sendmail``, ``send_message``, ``sendmail_many`` and the pool all go through it.
"""

from __future__ import annotations

import email.message
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .._dkim import signed
from .._frozen import maker
from ..errors import EightBitNotSupportedError, SMTPNotSupportedError
from ..protocol import (
    Command,
    Data,
    Mail,
    Param,
    Rcpt,
    SmtpUtf8,
    body_type,
    command_line,
    normalise_line_endings,
    param_bytes,
)
from . import _addresses, _source
from ._checks import check_bool, check_options, check_text, recipients
from ._message import prepare_message
from ._session import Session

__all__ = [
    "BY_BDAT",
    "BY_DATA",
    "Envelope",
    "Framing",
    "Outgoing",
    "check_arguments",
    "mail_command",
    "rcpt_command",
    "rcpt_commands",
    "resolve",
]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for :meth:`asmtp.SMTP.sendmail_many` or a pool, as the caller gives it.

    Built directly, it carries :meth:`asmtp.SMTP.sendmail`'s arguments; built with
    :meth:`message`, :meth:`asmtp.SMTP.send_message`'s (envelope from the headers, Bcc
    removed).
    """

    from_addr: str | None
    to_addrs: str | Sequence[str] | None
    msg: object
    mail_options: Sequence[Param] = ()
    rcpt_options: Sequence[Param] = ()
    from_headers: bool = False
    """True when built by :meth:`message`: the envelope comes from the headers."""
    add_missing_headers: bool = True
    """With :attr:`from_headers`: add ``Date`` and ``Message-ID`` when the message has none."""

    def __post_init__(self) -> None:
        """Check every argument's type; :class:`TypeError` says what to pass.

        ``to_addrs`` and the options become tuples (an iterator is read once, here); a
        ``str`` of several recipients is refused (:func:`~._checks.recipients`).
        """
        if self.from_headers:
            if not isinstance(self.msg, email.message.Message):
                raise TypeError(
                    "send_message() takes an email.message.Message, not "
                    f"{type(self.msg).__name__}; send str or bytes with "
                    "sendmail(from_addr, to_addrs, msg)"
                )
        elif self.from_addr is None or self.to_addrs is None:
            raise TypeError("from_addr and to_addrs are required (or use Outgoing.message())")
        check_text("from_addr", self.from_addr, optional=True)
        if self.to_addrs is not None:
            to_addrs = recipients(self.to_addrs)
            if not isinstance(self.to_addrs, str):
                object.__setattr__(self, "to_addrs", to_addrs)
        mail_options, rcpt_options = self.mail_options, self.rcpt_options
        check_options("mail_options", mail_options)
        check_options("rcpt_options", rcpt_options)
        if mail_options.__class__ is not tuple:
            object.__setattr__(self, "mail_options", tuple(mail_options))
        if rcpt_options.__class__ is not tuple:
            object.__setattr__(self, "rcpt_options", tuple(rcpt_options))
        check_bool("add_missing_headers", self.add_missing_headers)

    @classmethod
    def checked(
        cls,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: object,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
    ) -> Outgoing:
        """``sendmail``'s arguments, the body's type checked now (:class:`TypeError`), so
        that a single send fails before anything goes on the wire."""
        _source.check_sendable(msg)
        if cls is not Outgoing:
            return cls(from_addr, to_addrs, msg, mail_options, rcpt_options)
        # Made once per sendmail(): set without the frozen __init__'s setattr per field.
        item = _outgoing(from_addr, to_addrs, msg, mail_options, rcpt_options, False, True)
        item.__post_init__()
        return item

    @classmethod
    def message(
        cls,
        msg: email.message.Message,
        from_addr: str | None = None,
        to_addrs: str | Sequence[str] | None = None,
        mail_options: Sequence[Param] = (),
        rcpt_options: Sequence[Param] = (),
        add_missing_headers: bool = True,
    ) -> Outgoing:
        """A message sent by :meth:`asmtp.SMTP.send_message`'s rules (``Date`` and
        ``Message-ID`` added when missing, unless ``add_missing_headers`` is false)."""
        return cls(
            from_addr,
            to_addrs,
            msg,
            mail_options,
            rcpt_options,
            from_headers=True,
            add_missing_headers=add_missing_headers,
        )

    @property
    def replayable(self) -> bool:
        """Whether the body can be sent again from the start (not a one-shot stream)."""
        return isinstance(
            self.msg, (str, bytes, bytearray, memoryview, email.message.Message, list, tuple)
        )


class Framing(enum.Enum):
    """How the body goes out."""

    DATA = "DATA"
    """After ``354``, with CRLF line endings and dot-stuffing (RFC 5321 §4.5.2)."""
    BDAT = "BDAT"
    """In BDAT chunks (RFC 3030), line endings written as CRLF, or byte for byte when the
    MAIL declares BODY=BINARYMIME."""


# The members as module names, read for every message: on Python 3.11 each `Framing.DATA`
# is a call to EnumType.__getattr__.
BY_DATA: Final = Framing.DATA
BY_BDAT: Final = Framing.BDAT

_DECLARED_BINARYMIME: Final = "BODY=BINARYMIME"
"""The parameter :func:`_mail_options` adds, last, for an 8-bit body that BDAT will carry:
found by identity, without parsing the options (nor comparing the caller's bytes with it)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """An :class:`Outgoing` resolved against a session: exactly what goes out."""

    sender: str
    """The caller's spelling, for :class:`smtplib.SMTPSenderRefused`."""
    recipients: tuple[str, ...]
    """The callers' spellings, in RCPT order (the keys of the refused dict)."""
    mail: Mail
    rcpts: tuple[Rcpt, ...]
    source: _source.MessageSource
    framing: Framing

    def commands(self, *tail: Command) -> list[Command]:
        """MAIL, every RCPT, then ``tail``."""
        return [self.mail, *self.rcpts, *tail]

    def data_group(self) -> list[Command]:
        """MAIL, every RCPT, then DATA: the pipelined group of RFC 2920 §3.1."""
        return [self.mail, *self.rcpts, _DATA]

    def addresses(self) -> dict[bytes, str]:
        """Each RCPT's wire address to the caller's spelling of it."""
        if len(self.rcpts) == 1:  # the usual case, without a comprehension's frame
            return {self.rcpts[0].address: self.recipients[0]}
        return {rcpt.address: each for rcpt, each in zip(self.rcpts, self.recipients, strict=True)}


_outgoing: Callable[
    [
        str | None,
        str | Sequence[str] | None,
        object,
        Sequence[Param],
        Sequence[Param],
        bool,
        bool,
    ],
    Outgoing,
] = maker(Outgoing)
_envelope: Callable[
    [str, tuple[str, ...], Mail, tuple[Rcpt, ...], _source.MessageSource, Framing], Envelope
] = maker(Envelope)
_mail: Callable[[bytes, tuple[bytes, ...]], Mail] = maker(Mail)
_rcpt: Callable[[bytes, tuple[bytes, ...]], Rcpt] = maker(Rcpt)
# A command without arguments is a value: one serves every message, made once.
_DATA: Final = Data()


async def resolve(session: Session, item: Outgoing) -> Envelope:
    """The envelope ``item`` has on ``session`` (after EHLO).

    Raises, before anything is sent: :class:`TypeError` for a body that cannot be sent,
    :class:`ValueError` (:class:`~asmtp.protocol.BadArgument`) for CR, LF or NUL in an
    address, :class:`SMTPNotSupportedError` for SMTPUTF8 or BINARYMIME the server lacks.
    With a DKIM signer in the session's settings, the body is signed as it will go out
    (CRLF line endings, CRLF-terminated): :class:`TypeError` for a body that can be read
    only once, :class:`ValueError` for a message that cannot be signed.
    """
    from_addr, to_addrs, msg = item.from_addr, item.to_addrs, item.msg
    mail_options = list(item.mail_options)
    source: _source.MessageSource
    if item.from_headers:
        assert isinstance(msg, email.message.Message)  # noqa: S101 - Outgoing checks it
        prepared = prepare_message(
            msg,
            from_addr,
            to_addrs,
            smtputf8_supported=session.has_extn("smtputf8"),
            add_missing_headers=item.add_missing_headers,
            local_hostname=session.local_hostname,
        )
        from_addr, to_addrs, source = prepared.from_addr, prepared.to_addrs, prepared.data
        mail_options.extend(prepared.mail_options)
        eight_bit = prepared.eight_bit
    else:
        source = _source.to_source(msg)
        eight_bit = _source.eight_bit(msg, source)
    if session.settings.dkim is not None:
        # After Bcc removal and flattening: the signed bytes are the bytes sent.
        source = await signed(session.settings.dkim, source)
    assert from_addr is not None and to_addrs is not None  # noqa: S101 - Outgoing checks it
    recipients = (to_addrs,) if isinstance(to_addrs, str) else tuple(to_addrs)
    binary = bool(mail_options) and body_type(mail_options) == "BINARYMIME"
    options = _mail_options(
        session, source, from_addr, recipients, mail_options, eight_bit, binary=binary
    )
    if not binary and options and options[-1] is _DECLARED_BINARYMIME:
        # Declared here for an 8-bit body in memory: BDAT sends BINARYMIME bodies as given,
        # so the line endings are made CRLF now, as for any other body.
        assert isinstance(source, (bytes, bytearray, memoryview))  # noqa: S101 - in memory
        source = normalise_line_endings(bytes(source))
    extensions = session.extensions
    rcpt_options = item.rcpt_options
    chunked = bool(
        extensions is not None
        and extensions.chunking
        and (session.use_chunking or binary)
        and recipients
    )
    return _envelope(
        from_addr,
        recipients,
        mail_command(session, from_addr, options),
        rcpt_commands(session, recipients, rcpt_options),
        source,
        BY_BDAT if chunked else BY_DATA,
    )


def _mail_options(
    session: Session,
    source: _source.MessageSource,
    from_addr: str,
    recipients: tuple[str, ...],
    mail_options: Sequence[Param],
    eight_bit: _source.EightBit,
    *,
    binary: bool,
) -> list[Param]:
    """SIZE= when advertised, the caller's options, SMTPUTF8 when an address needs it, what
    the 8-bit content asmtp encoded needs (:func:`_declare_eight_bit`), and BODY=BINARYMIME
    for an 8-bit body going out by BDAT where the server offers it."""
    if binary and not (session.has_extn("chunking") and session.has_extn("binarymime")):
        # RFC 3030 §3: only BDAT carries a BINARYMIME body.
        raise SMTPNotSupportedError(
            "BODY=BINARYMIME needs CHUNKING and BINARYMIME, which the server does not advertise"
        )
    if not session.does_esmtp:
        if eight_bit is not _source.NO_EIGHT_BIT:
            raise EightBitNotSupportedError(
                f"the message has {eight_bit.value} and the server does not speak ESMTP, "
                "so it cannot be declared (RFC 6152)"
            )
        return []
    options: list[Param] = []
    # Counting the line endings of a large body costs a pass over it: only when asked.
    size = None
    if session.has_extn("size"):
        # For bytes, the core counts and remembers a body it need not check when sent.
        size = (
            session.message_size(source)
            if source.__class__ is bytes
            else _source.known_size(source)
        )
    if size is not None:
        options.append(f"SIZE={size}")
    options.extend(mail_options)
    addresses = (from_addr, *recipients)
    # All-ASCII input cannot need SMTPUTF8; only otherwise parse out the bare addresses
    # (a non-ASCII display name alone does not need it).
    needs_utf8 = not all(map(str.isascii, addresses)) and _addresses.needs_smtputf8(
        *(_addresses.bare_address(a) for a in addresses)
    )
    if needs_utf8 and not any(_is_smtputf8(o) for o in options):
        if not session.has_extn("smtputf8"):
            raise SMTPNotSupportedError(
                "an envelope address is not ASCII and the server does not advertise SMTPUTF8"
            )
        options.append("SMTPUTF8")
    if eight_bit is not _source.NO_EIGHT_BIT:
        _declare_eight_bit(session, eight_bit, options)
    if _binarymime_by_bdat(session, options) and _source.eight_bit_octets(source):
        options.append(_DECLARED_BINARYMIME)  # RFC 3030 §3: 8-bit content, no encoding (last)
    return options


def _declare_eight_bit(session: Session, eight_bit: _source.EightBit, options: list[Param]) -> None:
    """Declare the 8-bit content asmtp encoded, or refuse it before MAIL.

    RFC 6152 §3: 8-bit octets need BODY=8BITMIME (BINARYMIME does when BDAT carries the
    body); RFC 6531 §3.4 and RFC 6532 §3: UTF-8 in the header block needs SMTPUTF8 too. A
    BODY= the caller gave is kept.
    """
    if eight_bit is _source.EightBit.HEADERS and not any(_is_smtputf8(o) for o in options):
        if not session.has_extn("smtputf8"):
            raise EightBitNotSupportedError(
                f"the message has {eight_bit.value} and the server does not advertise "
                "SMTPUTF8 (RFC 6531)"
            )
        options.append("SMTPUTF8")
    if body_type(options) is None and not _binarymime_by_bdat(session, options):
        if not session.has_extn("8bitmime"):
            raise EightBitNotSupportedError(
                f"the message has {eight_bit.value} and the server does not advertise "
                "8BITMIME (RFC 6152)"
            )
        options.append("BODY=8BITMIME")


def _binarymime_by_bdat(session: Session, options: Sequence[Param]) -> bool:
    """Whether BDAT will carry the body to a server offering BINARYMIME, undeclared."""
    return (
        session.use_chunking
        and session.has_extn("chunking")
        and session.has_extn("binarymime")
        and body_type(options) is None
    )


def mail_command(session: Session, sender: str, options: Sequence[Param]) -> Mail:
    """``MAIL FROM`` for ``sender``; options only to an ESMTP server, as smtplib.

    SMTPUTF8 among the options switches the session's command encoding to UTF-8.
    """
    params: tuple[bytes, ...] = ()
    if options and session.does_esmtp:
        if any(map(_is_smtputf8, options)):
            if not session.has_extn("smtputf8"):
                raise SMTPNotSupportedError("SMTPUTF8 not supported by server")
            session.command_encoding = "utf-8"
        encoding = session.command_encoding
        params = tuple([param_bytes(option, encoding) for option in options])
    address = _addresses.wire_address(sender, utf8=session.command_encoding == "utf-8")
    return _mail(address, params)


def rcpt_commands(
    session: Session, recipients: Sequence[str], options: Sequence[Param]
) -> tuple[Rcpt, ...]:
    """``RCPT TO`` for each of ``recipients``; options only to an ESMTP server, as smtplib."""
    params: tuple[bytes, ...] = ()
    if options and session.does_esmtp:
        params = tuple([param_bytes(option, session.command_encoding) for option in options])
    utf8, wire_address = session.command_encoding == "utf-8", _addresses.wire_address
    if len(recipients) == 1:
        return (_rcpt(wire_address(recipients[0], utf8=utf8), params),)
    return tuple([_rcpt(wire_address(each, utf8=utf8), params) for each in recipients])


def rcpt_command(session: Session, recipient: str, options: Sequence[Param]) -> Rcpt:
    """``RCPT TO`` for ``recipient`` alone (:func:`rcpt_commands`)."""
    return rcpt_commands(session, (recipient,), options)[0]


def check_arguments(commands: Sequence[Command]) -> None:
    """Serialise each command once for its argument checks alone: before lock-step, so
    that a bad last recipient fails before the first command goes out."""
    for command in commands:
        command_line(command)


def _is_smtputf8(option: Param) -> bool:
    if isinstance(option, str):
        return option.lower() == "smtputf8"
    if isinstance(option, bytes):
        return option.lower() == b"smtputf8"
    return isinstance(option, SmtpUtf8)
