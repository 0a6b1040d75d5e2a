"""send_message's header rules, as smtplib implements them.

Owns choosing the envelope from a message's headers (Resent-* when there is one Resent
block), removing Bcc and Resent-Bcc from what is sent, and flattening with CRLF line endings,
with UTF-8 headers when an address needs SMTPUTF8. Performs no I/O.
"""

from __future__ import annotations

import copy
import email.generator
import email.message
import email.utils
import io
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SMTPNotSupportedError

__all__ = ["PreparedMessage", "prepare_message"]


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """What ``sendmail`` needs: the envelope, the flattened bytes, and extra MAIL options."""

    from_addr: str
    to_addrs: list[str]
    data: bytes
    mail_options: tuple[str, ...]


def prepare_message(
    msg: email.message.Message,
    from_addr: str | None,
    to_addrs: str | Sequence[str] | None,
    *,
    smtputf8_supported: bool,
) -> PreparedMessage:
    """Derive the envelope and the bytes to send from ``msg``, as smtplib's ``send_message``.

    Raises :class:`ValueError` for more than one Resent- block and
    :class:`SMTPNotSupportedError` when an address needs SMTPUTF8 the server lacks.
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
    msg_copy = copy.copy(msg)
    del msg_copy["Bcc"]
    del msg_copy["Resent-Bcc"]
    international = not "".join([from_addr, *recipients]).isascii()
    if international and not smtputf8_supported:
        raise SMTPNotSupportedError(
            "One or more source or delivery addresses require internationalized email "
            "support, but the server does not advertise the required SMTPUTF8 capability"
        )
    with io.BytesIO() as buffer:
        if international:
            policy = msg.policy.clone(utf8=True)  # type: ignore[call-arg]  # typeshed lacks utf8
            generator = email.generator.BytesGenerator(buffer, policy=policy)
            options: tuple[str, ...] = ("SMTPUTF8", "BODY=8BITMIME")
        else:
            generator = email.generator.BytesGenerator(buffer)
            options = ()
        generator.flatten(msg_copy, linesep="\r\n")
        data = buffer.getvalue()
    return PreparedMessage(from_addr, recipients, data, options)
