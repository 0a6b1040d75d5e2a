"""Opening a ready-to-send session under a TLS policy: connect, greeting, STARTTLS, AUTH.

Owns the facade's TLS policy (:data:`~asmtp.TLSMode`): secure by default, and credentials
are never sent over an unencrypted connection unless the caller chose ``tls="none"``. The
one-shot functions and the pool open their connections here.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final

from .._dkim import DKIMSigner
from .._transport import Connector, PreConnected, Proxy, connect, connector_for
from ..auth import Mechanism, Secret
from ..errors import SMTPConnectError, TLSRequiredError
from ._commands import ehlo_or_helo_if_needed, quit_politely
from ._login import auth, login
from ._session import Session
from ._settings import SMTP_SSL_PORT, ClientSettings, TLSMode, check_tls
from ._tls import starttls
from ._url import parse_url

__all__ = ["DEFAULT_HOST", "client_settings", "open_session", "secure_and_login"]

DEFAULT_HOST: Final = "localhost"
"""The host the one-shot functions and the pool connect to when given neither host nor url."""


def client_settings(
    host: str,
    port: int,
    *,
    url: str | None = None,
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
    dkim: DKIMSigner | None = None,
) -> ClientSettings:
    """The settings the public keyword arguments (and ``url``, see ``_url``) describe, checked.

    Raises :class:`ValueError` for a ``password`` without a ``username`` (it would be
    ignored), for ``url`` with ``host`` or ``port``, or a ``tls``, user name or password
    that contradicts the URL's; :class:`TypeError` for an argument of the wrong type.
    """
    tls = check_tls(tls)
    if password is not None and not isinstance(password, (str, Secret)):
        raise TypeError(f"password must be a str or None, not {type(password).__name__}")
    secret = Secret(password) if isinstance(password, str) else password
    del password  # tracebacks keep every frame's locals: only the Secret stays
    lmtp = False
    if url is not None:
        target = parse_url(url)
        del url
        if host != DEFAULT_HOST or port:
            raise ValueError("give the server either as url= or as host and port, not both")
        if target.tls is not None and tls not in ("auto", target.tls):
            raise ValueError(f"the url means tls={target.tls!r}; it contradicts tls={tls!r}")
        if target.username is not None and username is not None:
            raise ValueError("give the user name in the url or as username=, not both")
        if target.password is not None and secret is not None:
            raise ValueError("give the password in the url or as password=, not both")
        host, port, lmtp = target.host, target.port, target.lmtp
        tls = target.tls or tls
        username = username if target.username is None else target.username
        secret = secret if target.password is None else target.password
    if secret is not None and username is None:
        raise ValueError(
            "password= without username= would be ignored: give the user name too, or a "
            "SASL mechanism= that carries its own credentials"
        )
    if lmtp and tls == "implicit":
        raise ValueError("tls='implicit' does not apply to LMTP: use 'auto', 'starttls' or 'none'")
    if host.startswith("/") and tls in ("starttls", "implicit"):
        raise ValueError(f"tls={tls!r} does not apply to a Unix socket: use 'auto' or 'none'")
    connector = connector_for(connector, proxy=proxy, sock=sock)
    return ClientSettings(
        host=host,
        port=port,
        tls=tls,
        implicit_tls=tls == "implicit" or (tls == "auto" and port == SMTP_SSL_PORT and not lmtp),
        context=context,
        username=username,
        password=secret,
        mechanism=mechanism,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
        lmtp=lmtp,
        chunking=chunking,
        connector=connector,
        dkim=dkim,
    )


async def open_session(session: Session) -> None:
    """Connect ``session`` to its settings' server, then secure and authenticate it.

    Raises :class:`smtplib.SMTPConnectError` for a greeting other than 220 and
    :class:`~asmtp.TLSRequiredError` where the policy forbids going on.
    """
    settings = session.settings
    port = settings.port
    if not port and not settings.host.startswith("/"):
        port = SMTP_SSL_PORT if settings.implicit_tls else 25
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
    # A Unix socket never leaves the machine: there is no network to encrypt against.
    local = settings.host.startswith("/")
    if not session.is_encrypted and tls != "none" and not local:
        await ehlo_or_helo_if_needed(session)
        if session.has_extn("starttls"):
            await starttls(session, settings.context)
        elif tls in ("starttls", "implicit"):
            raise TLSRequiredError(
                f"{session.where} does not offer STARTTLS and tls={tls!r} requires encryption",
                "no-starttls",
            )
    credentials = settings.username is not None or settings.mechanism is not None
    if credentials and not session.is_encrypted and tls != "none" and not local:
        raise TLSRequiredError(
            f"refusing to send credentials to {session.where} over an "
            "unencrypted connection (the server offers no STARTTLS); pass tls='none' to "
            "allow it",
            "credentials-in-clear",
        )
    if credentials:
        await ehlo_or_helo_if_needed(session)  # AUTH needs EHLO first (RFC 4954 §4)
    if settings.mechanism is not None:
        mechanism = settings.mechanism()
        await auth(session, mechanism.name, mechanism)
    elif settings.username is not None:
        await login(session, settings.username, settings.password or Secret(""))
