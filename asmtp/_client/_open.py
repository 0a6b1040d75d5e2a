"""Opening a ready-to-send session under a TLS policy: connect, greeting, STARTTLS, AUTH.

Owns the facade's TLS policy (:data:`~asmtp.TLSMode`): secure by default, and credentials
are never sent over an unencrypted connection unless the caller chose ``tls="none"``. The
one-shot functions and the pool open their connections here.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from .._transport import Connector, PreConnected, Proxy, connect, connector_for
from ..auth import Mechanism, Secret
from ..errors import SMTPConnectError, TLSRequiredError
from ._commands import ehlo_or_helo_if_needed, quit_politely
from ._login import auth, login
from ._session import Session
from ._settings import SMTP_SSL_PORT, ClientSettings, TLSMode, check_tls
from ._tls import starttls

__all__ = ["client_settings", "open_session", "secure_and_login"]


def client_settings(
    host: str,
    port: int,
    *,
    tls: TLSMode,
    username: str | None,
    password: str | Secret | None,
    mechanism: Callable[[], Mechanism] | None,
    context: ssl.SSLContext | None,
    local_hostname: str | None,
    timeout: float | None,
    source_address: tuple[str, int] | None,
    chunking: bool = True,
    connector: Connector = connect,
    proxy: str | Proxy | None = None,
    sock: PreConnected | None = None,
) -> ClientSettings:
    """The settings the public keyword arguments describe, checked."""
    connector = connector_for(connector, proxy=proxy, sock=sock)
    tls = check_tls(tls)
    if isinstance(password, str):
        password = Secret(password)
    return ClientSettings(
        host=host,
        port=port,
        tls=tls,
        implicit_tls=tls == "implicit" or (tls == "auto" and port == SMTP_SSL_PORT),
        context=context,
        username=username,
        password=password,
        mechanism=mechanism,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
        chunking=chunking,
        connector=connector,
    )


async def open_session(session: Session) -> None:
    """Connect ``session`` to its settings' server, then secure and authenticate it.

    Raises :class:`smtplib.SMTPConnectError` for a greeting other than 220 and
    :class:`~asmtp.TLSRequiredError` where the policy forbids going on.
    """
    settings = session.settings
    port = settings.port or (SMTP_SSL_PORT if settings.implicit_tls else 25)
    reply = await session.open(settings.host, port)
    if reply.code != 220:
        await session.close()
        raise SMTPConnectError(reply.code, reply.message)
    try:
        await session.run(secure_and_login, session)
    except Exception:
        await session.run(quit_politely, session)  # a refusal: say goodbye as smtplib does
        raise
    except BaseException:
        await session.close()
        raise


async def secure_and_login(session: Session) -> None:
    """Apply the settings' TLS policy to a connected session, then authenticate if asked."""
    settings = session.settings
    tls = settings.tls
    if not session.is_encrypted and tls != "none":
        await ehlo_or_helo_if_needed(session)
        if session.has_extn("starttls"):
            await starttls(session, settings.context)
        elif tls in ("starttls", "implicit"):
            raise TLSRequiredError(
                f"the server does not offer STARTTLS and tls={tls!r} requires encryption"
            )
    credentials = settings.username is not None or settings.mechanism is not None
    if credentials and not session.is_encrypted and tls != "none":
        raise TLSRequiredError(
            "refusing to send credentials over an unencrypted connection "
            "(the server offers no STARTTLS); pass tls='none' to allow it"
        )
    if credentials:
        await ehlo_or_helo_if_needed(session)  # AUTH needs EHLO first (RFC 4954 §4)
    if settings.mechanism is not None:
        mechanism = settings.mechanism()
        await auth(session, mechanism.name, mechanism)
    elif settings.username is not None:
        await login(session, settings.username, settings.password or Secret(""))
