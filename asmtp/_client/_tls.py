"""STARTTLS (RFC 3207) with verification by default."""

from __future__ import annotations

import ssl

from ..errors import SMTPNotSupportedError, SMTPResponseException
from ..protocol import StartTLS
from ._commands import ehlo, ehlo_or_helo_if_needed, hostname_of
from ._session import Session

__all__ = ["starttls"]


async def starttls(
    session: Session,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[int, bytes]:
    """Upgrade to TLS, then say EHLO again (everything learned before TLS is forgotten).

    Raises :class:`SMTPNotSupportedError` if STARTTLS is not advertised, and
    :class:`ssl.SSLError` when the handshake or the verification fails.
    """
    await ehlo_or_helo_if_needed(session)
    if not session.has_extn("starttls"):
        raise SMTPNotSupportedError("STARTTLS extension not supported by server.")
    reply = await session.exchange(StartTLS())
    if reply.code != 220:
        raise SMTPResponseException(reply.code, reply.message)
    if server_hostname is None and not session.host.startswith("/"):
        server_hostname = session.settings.server_hostname or session.host or None
    await session.start_tls(context, server_hostname)
    answer = await ehlo(session)
    # smtplib's callers say EHLO themselves next; that one gets this reply (see ehlo()).
    session.ehlo_after_tls = (hostname_of(session), answer)
    return reply.code, reply.message
