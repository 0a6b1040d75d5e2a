"""A TLS handshake that fails, by every way into TLS, on every event loop.

Whatever the server does instead of completing the handshake (hang up or reset, answer in
plain text, speak only TLS 1.0, say nothing, show a certificate for another name), the caller sees
the ssl module's or smtplib's vocabulary, as smtplib would: ``ssl.SSLEOFError`` for a
handshake cut short, another ``ssl.SSLError`` for a refused one, ``TimeoutError`` for a
silent server; never an anyio or trio exception. The connection is closed afterwards.
Ways into TLS: ``starttls()``, ``SMTP_SSL``, the one-shot ``tls="implicit"``, the one-shot
``tls="auto"`` with STARTTLS offered (a failed handshake fails the send: it never goes on
in plain text), and a pool; no MAIL is ever written.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import pytest
import trustme

import asmtp
from support.scripted import Close, ExpectBytes, ExpectLine, Send, Sleep, StartTLS, Step

from ._kit import GREETING, HOST, RECIPIENTS, SENDER, unchecked

if TYPE_CHECKING:
    from support.fixtures import TLSContexts

pytestmark = pytest.mark.anyio

EHLO_STARTTLS: Final = b"250-hostile.test\r\n250 STARTTLS\r\n"
TLS_RECORD_HEADER: Final = 5
"""Bytes of the ClientHello's record header: the server waits for the hello before failing."""

SILENCE_TIMEOUT: Final = 1.5
"""The client's timeout in these tests: only the silent server makes it wait that long."""

EXPECTED: Final[dict[str, type[Exception]]] = {
    "hang-up": ssl.SSLEOFError,
    "reset": ssl.SSLEOFError,
    "plain-text-answer": ssl.SSLError,
    "tls-1.0-only": ssl.SSLError,
    "silence": TimeoutError,
    "certificate-for-another-name": ssl.SSLCertVerificationError,
}


def _tls_1_0_only(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def _for_another_name(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example").configure_cert(context)
    return context


def _failure(failure: str, ca: trustme.CA) -> list[Step]:
    """What the server does where the handshake should be."""
    hello = ExpectBytes(TLS_RECORD_HEADER)
    if failure in ("hang-up", "reset"):
        return [hello, Close(reset=failure == "reset")]
    if failure == "plain-text-answer":
        return [hello, Send(b"500 5.5.1 what is this?\r\n"), Sleep(1)]
    if failure == "silence":
        return [hello, Sleep(SILENCE_TIMEOUT + 2)]
    make = _tls_1_0_only if failure == "tls-1.0-only" else _for_another_name
    return [StartTLS(make(ca))]


async def _starttls(port: int, context: ssl.SSLContext) -> None:
    smtp = asmtp.SMTP(HOST, port, "client.test", timeout=SILENCE_TIMEOUT)
    await smtp.connect()
    try:
        await smtp.starttls(context=context)
    finally:
        assert not smtp.is_connected, "the connection was left open"


async def _smtp_ssl(port: int, context: ssl.SSLContext) -> None:
    smtp = asmtp.SMTP_SSL(HOST, port, "client.test", timeout=SILENCE_TIMEOUT, context=context)
    await smtp.connect()


def _one_shot(tls: asmtp.TLSMode) -> Callable[[int, ssl.SSLContext], Awaitable[None]]:
    async def send(port: int, context: ssl.SSLContext) -> None:
        await asmtp.sendmail(
            SENDER,
            RECIPIENTS[0],
            b"x\r\n",
            host=HOST,
            port=port,
            tls=tls,
            context=context,
            local_hostname="client.test",
            timeout=SILENCE_TIMEOUT,
        )

    return send


async def _pool(port: int, context: ssl.SSLContext) -> None:
    async with asmtp.SMTPPool(
        HOST,
        port,
        tls="implicit",
        context=context,
        local_hostname="client.test",
        timeout=SILENCE_TIMEOUT,
        retry=asmtp.RetryPolicy(attempts=1),
    ) as pool:
        await pool.sendmail(SENDER, RECIPIENTS[0], b"x\r\n")


WAYS_IN: Final[dict[str, Callable[[int, ssl.SSLContext], Awaitable[None]]]] = {
    "starttls": _starttls,
    "smtp-ssl": _smtp_ssl,
    "one-shot-implicit": _one_shot("implicit"),
    "one-shot-auto": _one_shot("auto"),
    "pool-implicit": _pool,
}
STARTTLS_WAYS: Final = ("starttls", "one-shot-auto")


@pytest.mark.parametrize("way_in", WAYS_IN)
@pytest.mark.parametrize("failure", EXPECTED)
async def test_a_failed_handshake_raises_ssl_or_timeout_errors_only(
    tls_contexts: TLSContexts, trustme_ca: trustme.CA, way_in: str, failure: str
) -> None:
    steps = _failure(failure, trustme_ca)
    if way_in in STARTTLS_WAYS:
        steps = [Send(GREETING), ExpectLine(b"EHLO"), Send(EHLO_STARTTLS)]
        steps += [ExpectLine(b"STARTTLS"), Send(b"220 go ahead\r\n")]
        steps += _failure(failure, trustme_ca)
    with unchecked(steps) as server:
        with pytest.raises(EXPECTED[failure]):
            await WAYS_IN[way_in](server.port, tls_contexts.client)
    assert b"MAIL" not in server.received
