"""``sock=``: a connection the caller opened (their own tunnel) carries the session.

A connected :class:`socket.socket` (TCP or Unix) or an anyio ``ByteStream``, on asyncio,
uvloop and trio; TLS on top checks ``host`` (default ``localhost``), never anything the
socket says. A stream serves one connection; a socket that cannot carry one is refused when
the client is made.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

import asmtp

from ._kit import MAIL_NAME, ME, MESSAGE, WAIT

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

    from .conftest import MailTLS

pytestmark = pytest.mark.anyio


def _connected(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


async def test_a_connected_socket_carries_a_send(smtpd_server_factory: SMTPDServerFactory) -> None:
    server = smtpd_server_factory()
    async with asmtp.SMTP(local_hostname=ME, timeout=WAIT, sock=_connected(server.port)) as smtp:
        assert smtp.is_connected
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE


async def test_a_connected_unix_socket_carries_a_send(
    smtpd_server_factory: SMTPDServerFactory, unix_socket_path: Path
) -> None:
    server = smtpd_server_factory(unix_path=unix_socket_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(unix_socket_path))
    async with asmtp.SMTP(local_hostname=ME, timeout=WAIT, sock=sock) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE


async def test_an_anyio_byte_stream_carries_a_send(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory()
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    async with asmtp.SMTP(local_hostname=ME, timeout=WAIT, sock=stream) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE


@pytest.mark.parametrize("kind", ["socket", "anyio-stream"])
async def test_implicit_tls_over_a_given_stream_checks_the_host_name(
    smtpd_server_factory: SMTPDServerFactory, mail_tls: MailTLS, kind: str
) -> None:
    server = smtpd_server_factory(ssl_context=mail_tls.server)

    async def opened() -> socket.socket | anyio.abc.ByteStream:
        if kind == "socket":
            return _connected(server.port)
        return await anyio.connect_tcp("127.0.0.1", server.port)

    async with asmtp.SMTP_SSL(
        MAIL_NAME, timeout=WAIT, context=mail_tls.client, sock=await opened()
    ) as smtp:
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.SMTP_SSL(
            "other.test", timeout=WAIT, context=mail_tls.client, sock=await opened()
        ).connect()


async def test_starttls_over_a_given_socket_checks_the_host_name(
    smtpd_server_factory: SMTPDServerFactory, mail_tls: MailTLS
) -> None:
    server = smtpd_server_factory(tls_context=mail_tls.server)
    async with asmtp.connect(
        MAIL_NAME,
        local_hostname=ME,
        timeout=WAIT,
        tls="starttls",
        context=mail_tls.client,
        sock=_connected(server.port),
    ) as smtp:
        assert smtp.is_encrypted
        await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asmtp.sendmail(
            "a@x.test",
            ["b@x.test"],
            MESSAGE,
            host="other.test",
            tls="starttls",
            context=mail_tls.client,
            timeout=WAIT,
            sock=_connected(server.port),
        )
    assert len(server.handler.deliveries) == 1


async def test_a_given_stream_serves_one_connection(
    smtpd_server_factory: SMTPDServerFactory,
) -> None:
    server = smtpd_server_factory()
    smtp = asmtp.SMTP(local_hostname=ME, timeout=WAIT, sock=_connected(server.port))
    assert (await smtp.connect())[0] == 220
    await smtp.quit()
    with pytest.raises(ConnectionError, match="connects once"):
        await smtp.connect()


def test_a_socket_that_cannot_carry_a_session_is_refused_when_the_client_is_made() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="stream socket"):
            asmtp.SMTP(sock=udp)
    with socket.socket() as unconnected, pytest.raises(ValueError, match="connected socket"):
        asmtp.SMTP(sock=unconnected)
    with pytest.raises(TypeError, match="sock= takes"):
        asmtp.SMTP(sock="127.0.0.1:25")  # type: ignore[arg-type]
