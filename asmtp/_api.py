"""One-shot sending: connect, secure, authenticate, send and QUIT in one call.

Owns the facade's TLS policy (see :data:`TLSMode`): secure by default, and credentials are
never sent over an unencrypted connection unless the caller chose ``tls="none"``.
"""

from __future__ import annotations

import contextlib
import email.message
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Final, Literal, get_args

import anyio

from ._client import DEFAULT_TIMEOUT, SMTP, SMTP_SSL, SMTP_SSL_PORT, SendmailResult
from .auth import Mechanism
from .errors import TLSRequiredError
from .protocol import Param

__all__ = [
    "TLSMode",
    "check_tls_mode",
    "connect",
    "new_client",
    "secure_and_login",
    "send_message",
    "sendmail",
]

TLSMode = Literal["auto", "implicit", "starttls", "none"]
"""How the one-shot functions secure the connection.

- ``"auto"`` (default): implicit TLS on port 465; elsewhere STARTTLS when the server
  advertises it. Credentials are refused on a connection that stayed unencrypted.
- ``"implicit"``: TLS from the first byte (RFC 8314).
- ``"starttls"``: STARTTLS is required; fails if the server does not offer it.
- ``"none"``: plain text, even with credentials; only for trusted local servers.
"""

_TLS_MODES: Final[tuple[str, ...]] = get_args(TLSMode)


def check_tls_mode(tls: object) -> TLSMode:
    """``tls`` itself when it is one of :data:`TLSMode`'s values, else :class:`ValueError`.

    A near miss (``"STARTTLS"``, ``True``, ``"required"``) must not quietly mean
    ``"auto"``, which goes on in the clear when STARTTLS is stripped.
    """
    if isinstance(tls, str) and tls in _TLS_MODES:
        return tls  # type: ignore[return-value]  # checked against the Literal's values
    choices = ", ".join(repr(mode) for mode in _TLS_MODES)
    raise ValueError(f"tls= must be one of {choices}, not {tls!r}")


@contextlib.asynccontextmanager
async def connect(
    host: str = "localhost",
    port: int = 0,
    *,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
) -> AsyncIterator[SMTP]:
    """Open a ready-to-send :class:`SMTP` under the TLS policy ``tls``; QUIT on exit.

    Authenticates with ``username``/``password`` (:meth:`SMTP.login`) or with a SASL
    ``mechanism`` object (:meth:`SMTP.auth`). Raises :class:`TLSRequiredError` rather than
    send credentials unencrypted or skip a required STARTTLS,
    :class:`smtplib.SMTPConnectError` when the greeting is not ``220``, and
    :class:`ValueError`, before connecting, for a ``tls`` that is not a :data:`TLSMode`.
    """
    smtp = new_client(
        host,
        port,
        tls=tls,
        context=context,
        local_hostname=local_hostname,
        timeout=timeout,
        source_address=source_address,
    )
    async with smtp:
        await secure_and_login(
            smtp,
            tls=tls,
            username=username,
            password=password,
            mechanism=mechanism,
            context=context,
        )
        yield smtp


def new_client(
    host: str,
    port: int,
    *,
    tls: TLSMode,
    context: ssl.SSLContext | None,
    local_hostname: str | None,
    timeout: float | None,
    source_address: tuple[str, int] | None,
) -> SMTP:
    """An unconnected :class:`SMTP` (or :class:`SMTP_SSL` for implicit TLS) for ``tls``.

    Raises :class:`ValueError` for a ``tls`` that is not a :data:`TLSMode`.
    """
    check_tls_mode(tls)
    if tls == "implicit" or (tls == "auto" and port == SMTP_SSL_PORT):
        return SMTP_SSL(
            host,
            port,
            local_hostname,
            timeout=timeout,
            source_address=source_address,
            context=context,
        )
    return SMTP(host, port, local_hostname, timeout, source_address)


async def secure_and_login(
    smtp: SMTP,
    *,
    tls: TLSMode,
    username: str | None,
    password: str | None,
    mechanism: Mechanism | None,
    context: ssl.SSLContext | None,
) -> None:
    """Apply the TLS policy to a connected ``smtp``, then authenticate if asked to."""
    if not smtp.is_encrypted and tls != "none":
        await smtp.ehlo_or_helo_if_needed()
        if smtp.has_extn("starttls"):
            await smtp.starttls(context=context)
        elif tls in ("starttls", "implicit"):
            raise TLSRequiredError(
                f"the server does not offer STARTTLS and tls={tls!r} requires encryption"
            )
    credentials = username is not None or mechanism is not None
    if credentials and not smtp.is_encrypted and tls != "none":
        raise TLSRequiredError(
            "refusing to send credentials over an unencrypted connection "
            "(the server offers no STARTTLS); pass tls='none' to allow it"
        )
    if credentials:
        await smtp.ehlo_or_helo_if_needed()  # AUTH needs EHLO first (RFC 4954 §4)
    if mechanism is not None:
        await smtp.auth(mechanism.name, mechanism)
    elif username is not None:
        await smtp.login(username, password or "")


async def sendmail(
    from_addr: str,
    to_addrs: str | Sequence[str],
    msg: object,
    *,
    host: str = "localhost",
    port: int = 0,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
) -> SendmailResult:
    """Connect, secure, authenticate, send one message and QUIT; returns the refused dict.

    Raises what :meth:`SMTP.sendmail` raises, :class:`TLSRequiredError` (see :func:`connect`)
    and :class:`smtplib.SMTPConnectError` for a greeting other than ``220``. ``deadline``
    bounds the whole call, connecting included, in seconds (:class:`TimeoutError`).
    """
    with _deadline(deadline):
        async with connect(
            host,
            port,
            tls=tls,
            username=username,
            password=password,
            mechanism=mechanism,
            context=context,
            local_hostname=local_hostname,
            timeout=timeout,
            source_address=source_address,
        ) as smtp:
            return await smtp.sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)


async def send_message(
    msg: email.message.Message,
    *,
    from_addr: str | None = None,
    to_addrs: str | Sequence[str] | None = None,
    host: str = "localhost",
    port: int = 0,
    tls: TLSMode = "auto",
    username: str | None = None,
    password: str | None = None,
    mechanism: Mechanism | None = None,
    context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    mail_options: Sequence[Param] = (),
    rcpt_options: Sequence[Param] = (),
    deadline: float | None = None,
) -> SendmailResult:
    """Connect, send an :class:`email.message.Message` as :meth:`SMTP.send_message`, QUIT.

    ``deadline`` bounds the whole call, connecting included, in seconds.
    """
    with _deadline(deadline):
        async with connect(
            host,
            port,
            tls=tls,
            username=username,
            password=password,
            mechanism=mechanism,
            context=context,
            local_hostname=local_hostname,
            timeout=timeout,
            source_address=source_address,
        ) as smtp:
            return await smtp.send_message(msg, from_addr, to_addrs, mail_options, rcpt_options)


def _deadline(seconds: float | None) -> contextlib.AbstractContextManager[object]:
    return anyio.fail_after(seconds) if seconds is not None else contextlib.nullcontext()
