"""send_message's header rules, as smtplib implements them.

Owns choosing the envelope from a message's headers (Resent-* when there is one Resent
block) and writing the headers as UTF-8 when an address needs SMTPUTF8; the flattening
itself, Bcc and Resent-Bcc removed, is ``_flatten``'s. Performs no I/O.
"""

from __future__ import annotations

import datetime
import email.message
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import SMTPNotSupportedError
from ._flatten import flatten
from ._source import EightBit, eight_bit_content

__all__ = ["PreparedMessage", "missing_headers", "prepare_message"]

# RFC 5322 §3.4.1 dot-atom-text, as a domain name (ASCII letters, digits, hyphens, dots).
_DOMAIN: Final = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """What ``sendmail`` needs: the envelope, the flattened bytes, and extra MAIL options."""

    from_addr: str
    to_addrs: list[str]
    data: bytes
    mail_options: tuple[str, ...]
    eight_bit: EightBit
    """What the flattened bytes need declared (see :func:`asmtp._client._source.eight_bit`)."""


def prepare_message(
    msg: email.message.Message,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
    *,
    smtputf8_supported: bool,
    add_missing_headers: bool = False,
    local_hostname: str | None = None,
) -> PreparedMessage:
    """Derive the envelope and the bytes to send from ``msg``, as smtplib's ``send_message``.

    With ``add_missing_headers``, the bytes sent get the ``Date`` and ``Message-ID`` the
    message lacks (:func:`missing_headers`); ``msg`` itself is never changed.

    Raises :class:`ValueError` for more than one Resent- block,
    :class:`~asmtp.errors.MalformedHeaderError` for a header that would not come out as one
    field, and :class:`SMTPNotSupportedError` when an address needs SMTPUTF8 the server lacks.
    """
    resent = msg.get_all("Resent-Date")
    if resent is None:
        prefix = ""
    elif len(resent) == 1:
        prefix = "Resent-"
    else:
        raise ValueError("message has more than one 'Resent-' header block")
    if from_addr is None:
        # RFC 5322 §3.6.2: Sender, when present, names the agent responsible.
        header = msg[prefix + "Sender"] if (prefix + "Sender") in msg else msg[prefix + "From"]
        if header is None:
            raise ValueError(f"message has no {prefix}From or {prefix}Sender header")
        from_addr = email.utils.getaddresses([str(header)])[0][1]
    if to_addrs is None:
        fields = [
            str(f)
            for f in (msg[prefix + "To"], msg[prefix + "Bcc"], msg[prefix + "Cc"])
            if f is not None
        ]
        recipients = [addr for _, addr in email.utils.getaddresses(fields)]
    elif isinstance(to_addrs, str):
        recipients = [to_addrs]
    else:
        recipients = list(to_addrs)
    international = not "".join([from_addr, *recipients]).isascii()
    if international and not smtputf8_supported:
        raise SMTPNotSupportedError(
            "One or more source or delivery addresses require internationalized email "
            "support, but the server does not advertise the required SMTPUTF8 capability"
        )
    options = ("SMTPUTF8", "BODY=8BITMIME") if international else ()
    added = missing_headers(msg, from_addr, local_hostname) if add_missing_headers else ()
    data = flatten(msg, utf8=international, add=added)  # Bcc and Resent-Bcc removed
    return PreparedMessage(from_addr, recipients, data, options, eight_bit_content(data))


def missing_headers(
    msg: email.message.Message, sender: str, local_hostname: str | None
) -> tuple[tuple[str, str], ...]:
    """The ``Date`` and ``Message-ID`` fields ``msg`` lacks, made now.

    RFC 5322 §3.6 requires Date (and asks for Message-ID); RFC 6409 §8 lets a submission
    server add them, which many do not, so mail without them looks broken or like spam.
    Date is in UTC. The Message-ID's right side is the sender's domain, else the name the
    client gives in EHLO: never a DNS lookup (``make_msgid()`` without a domain does one).
    """
    added: list[tuple[str, str]] = []
    if "Date" not in msg:
        added.append(
            ("Date", email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc)))
        )
    if "Message-ID" not in msg:
        domain = sender.rpartition("@")[2].strip("<> ")
        if not _DOMAIN.fullmatch(domain):
            domain = local_hostname or "localhost"
        added.append(("Message-ID", email.utils.make_msgid(domain=domain)))
    return tuple(added)
