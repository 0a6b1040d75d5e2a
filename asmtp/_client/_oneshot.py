"""One-shot sending: connect, secure, authenticate, send and QUIT in one call."""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from .._dkim import DKIMSigner
from .._results import SendResult
from .._transport import PreConnected, Proxy
from ..auth import Mechanism, Secret
from ..protocol import Param
from . import _commands, _transaction
from ._envelope import Outgoing
from ._hooks import current as current_observer
from ._lmtp import LMTP
from ._observed import observed_session
from ._open import DEFAULT_HOST, client_settings, open_session
from ._sasl import is_mechanism
from ._session import Session
from ._settings import DEFAULT_TIMEOUT, ClientSettings, TLSMode
from ._smtp import SMTP, showing
from ._smtp_ssl import SMTP_SSL
from ._upload import OnProgress

__all__ = ["connect", "send_message", "sendmail"]


@contextlib.asynccontextmanager
async def connect(
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    url: str | None = None,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | Secret | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    proxy: str | Proxy | None = None,
    sock: PreConnected | None = None,
    dkim: DKIMSigner | None = None,
) -> AsyncIterator[SMTP]:
    """Open a ready-to-send :class:`SMTP` under the TLS policy ``tls``; QUIT on exit.

    ``url`` gives the server, the policy and the credentials in one string instead of
    ``host`` and ``port`` (``smtp://``, ``smtp+starttls://``, ``smtps://``, ``lmtp://``; see
    the TLS guide); an ``lmtp`` URL yields an :class:`LMTP`. Authenticates with
    ``username``/``password`` (:meth:`SMTP.login`) or with a SASL ``mechanism`` object
    (:meth:`SMTP.auth`). Raises :class:`TLSRequiredError` rather than send credentials
    unencrypted or skip a required STARTTLS, :class:`smtplib.SMTPConnectError` when the
    greeting is not ``220``, and :class:`ValueError` for a ``password`` without a
    ``username`` or a malformed ``url``.

    ``proxy`` (a URL such as ``"socks5h://user:pw@proxy:1080"``, or an
    :class:`asmtp.Proxy`) reaches the server through a SOCKS or HTTP CONNECT proxy, and
    ``sock`` over a connection the caller opened (``host`` is then only the name TLS
    checks), as for :class:`SMTP`; a failing proxy raises :class:`asmtp.ProxyError`.
    ``dkim`` (an :class:`asmtp.DKIMSigner`) signs every message sent.
    """
    settings = _settings(locals())
    del password, url
    session = Session(settings)
    await open_session(session)
    cls = LMTP if settings.lmtp else SMTP_SSL if settings.implicit_tls else SMTP
    async with showing(session, cls) as smtp:
        yield smtp


async def sendmail(
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: object,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    url: str | None = None,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | Secret | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    proxy: str | Proxy | None = None,
    sock: PreConnected | None = None,
    dkim: DKIMSigner | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
    on_progress: OnProgress | None = None,
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; returns the refused dict.

    Raises what :meth:`SMTP.sendmail` raises, :class:`TLSRequiredError` (see :func:`connect`)
    and :class:`smtplib.SMTPConnectError` for a greeting other than ``220``. ``deadline``
    bounds the whole call, connecting included, in seconds; ``proxy``, ``sock`` and ``dkim``
    as in :func:`connect`; ``on_progress`` as in :meth:`SMTP.sendmail`.
    """
    item = Outgoing.checked(from_addr, to_addrs, msg, mail_options, rcpt_options)
    settings = _settings(locals())
    del password, url
    return await _send_once(Session(settings), item, deadline, on_progress)


async def send_message(
    msg: email.message.Message,
    *,
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    url: str | None = None,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | Secret | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    proxy: str | Proxy | None = None,
    sock: PreConnected | None = None,
    dkim: DKIMSigner | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
    add_missing_headers: bool = True,
    on_progress: OnProgress | None = None,
) -> SendResult:
    """Connect, send an :class:`email.message.Message` as :meth:`SMTP.send_message`, QUIT.

    ``Date`` and ``Message-ID`` are added when missing unless ``add_missing_headers`` is
    false. ``deadline`` bounds the whole call, connecting included, in seconds; ``proxy``,
    ``sock`` and ``dkim`` as in :func:`connect`; ``on_progress`` as in :meth:`SMTP.sendmail`.
    """
    item = Outgoing.message(
        msg, from_addr, to_addrs, mail_options, rcpt_options, add_missing_headers
    )
    settings = _settings(locals())
    del password, url
    return await _send_once(Session(settings), item, deadline, on_progress)


_CONNECTION: Final = (
    "host",
    "port",
    "url",
    "tls",
    "username",
    "password",
    "context",
    "local_hostname",
    "timeout",
    "source_address",
    "proxy",
    "sock",
    "dkim",
)
"""The connection keywords the three one-shot functions share, besides ``mechanism``."""


def _settings(arguments: dict[str, Any]) -> ClientSettings:
    """The settings a one-shot function's connection keywords give (from its ``locals()``,
    so that the three share one list); ``mechanism`` is one object, used once."""
    mechanism = arguments["mechanism"]
    if mechanism is not None and not is_mechanism(mechanism):
        raise TypeError(
            f"mechanism must be an asmtp.auth.Mechanism, not {type(mechanism).__name__}"
        )
    connection = {name: arguments[name] for name in _CONNECTION}
    return client_settings(
        **connection, mechanism=None if mechanism is None else (lambda: mechanism)
    )


async def _send_once(
    session: Session, item: Outgoing, deadline: float | None, on_progress: OnProgress | None
) -> SendResult:
    """Open ``session``, send ``item``, QUIT; ``deadline`` bounds it all."""
    send = _connect_and_send(session, item, deadline, on_progress)
    observer = current_observer()
    if observer is None:
        return await send
    return await observed_session(observer, session, item, send)


async def _connect_and_send(
    session: Session, item: Outgoing, deadline: float | None, on_progress: OnProgress | None
) -> SendResult:
    with session.deadlines.send(deadline):
        await open_session(session)
        try:
            result = await session.run(
                _transaction.send, session, item, quit_after=True, on_progress=on_progress
            )
        except Exception:
            await session.run(_commands.quit_politely, session)
            raise
        except BaseException:
            await session.close()
            raise
        await session.run(_commands.quit_politely, session)
    return result
