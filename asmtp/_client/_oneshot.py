"""One-shot sending: connect, secure, authenticate, send and QUIT in one call."""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import AsyncIterator, Sequence

from .._results import SendResult
from .._transport import PreConnected, Proxy
from ..auth import Mechanism, Secret
from ..protocol import Param
from . import _commands, _transaction
from ._envelope import Outgoing
from ._open import client_settings, open_session
from ._session import Session
from ._settings import DEFAULT_TIMEOUT, TLSMode
from ._smtp import SMTP, showing
from ._smtp_ssl import SMTP_SSL

__all__ = ["connect", "send_message", "sendmail"]


@contextlib.asynccontextmanager
async def connect(
    host: str = "localhost",
    port: int = 0,
    *,
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
) -> AsyncIterator[SMTP]:
    """Open a ready-to-send :class:`SMTP` under the TLS policy ``tls``; QUIT on exit.

    Authenticates with ``username``/``password`` (:meth:`SMTP.login`) or with a SASL
    ``mechanism`` object (:meth:`SMTP.auth`). Raises :class:`TLSRequiredError` rather than
    send credentials unencrypted or skip a required STARTTLS, and
    :class:`smtplib.SMTPConnectError` when the greeting is not ``220``.

    ``proxy`` (a URL such as ``"socks5h://user:pw@proxy:1080"``, or an
    :class:`asmtp.Proxy`) reaches the server through a SOCKS or HTTP CONNECT proxy, and
    ``sock`` over a connection the caller opened (``host`` is then only the name TLS
    checks), as for :class:`SMTP`; a failing proxy raises :class:`asmtp.ProxyError`.
    """
    settings = client_settings(
        host,
        port,
        tls=tls,
        username=username,
        password=password,
        mechanism=None if mechanism is None else (lambda: mechanism),
        context=context,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
        proxy=proxy,
        sock=sock,
    )
    del password
    session = Session(settings)
    await open_session(session)
    async with showing(session, SMTP_SSL if settings.implicit_tls else SMTP) as smtp:
        yield smtp


async def sendmail(
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: object,
    *,
    host: str = "localhost",
    port: int = 0,
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
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
) -> SendResult:
    """Connect, secure, authenticate, send one message and QUIT; returns the refused dict.

    Raises what :meth:`SMTP.sendmail` raises, :class:`TLSRequiredError` (see :func:`connect`)
    and :class:`smtplib.SMTPConnectError` for a greeting other than ``220``. ``deadline``
    bounds the whole call, connecting included, in seconds; ``proxy`` and ``sock`` as in
    :func:`connect`.
    """
    item = Outgoing.checked(from_addr, to_addrs, msg, mail_options, rcpt_options)
    settings = client_settings(
        host,
        port,
        tls=tls,
        username=username,
        password=password,
        mechanism=None if mechanism is None else (lambda: mechanism),
        context=context,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
        proxy=proxy,
        sock=sock,
    )
    del password
    return await _send_once(Session(settings), item, deadline)


async def send_message(
    msg: email.message.Message,
    *,
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    host: str = "localhost",
    port: int = 0,
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
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
) -> SendResult:
    """Connect, send an :class:`email.message.Message` as :meth:`SMTP.send_message`, QUIT.

    ``deadline`` bounds the whole call, connecting included, in seconds; ``proxy`` and
    ``sock`` as in :func:`connect`.
    """
    item = Outgoing.message(msg, from_addr, to_addrs, mail_options, rcpt_options)
    settings = client_settings(
        host,
        port,
        tls=tls,
        username=username,
        password=password,
        mechanism=None if mechanism is None else (lambda: mechanism),
        context=context,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
        proxy=proxy,
        sock=sock,
    )
    del password
    return await _send_once(Session(settings), item, deadline)


async def _send_once(session: Session, item: Outgoing, deadline: float | None) -> SendResult:
    """Open ``session``, send ``item``, QUIT; ``deadline`` bounds it all."""
    with session.deadlines.send(deadline):
        await open_session(session)
        try:
            result = await session.run(_transaction.send, session, item)
        except Exception:
            await session.run(_commands.quit_politely, session)
            raise
        except BaseException:
            await session.close()
            raise
        await session.run(_commands.quit_politely, session)
    return result
