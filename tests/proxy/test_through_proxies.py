"""Mail through SOCKS4, SOCKS4a, SOCKS5, SOCKS5h and HTTP CONNECT proxies, end to end.

aiosmtpd behind the test kit's proxy (``support.proxy_server``), on asyncio, uvloop and
trio: plain, STARTTLS and implicit TLS, each with the certificate checked against the mail
server's name (the proxy's address is on none of its names). Where the scheme has the proxy
resolve names, the server is reached by a name only the proxy knows; elsewhere the proxy
sees an address, resolved here.
"""

from __future__ import annotations

import email.message
import ipaddress
import ssl
from typing import TYPE_CHECKING

import anyio
import pytest

import asmtp
from support.aiosmtpd_server import RecordingHandler
from support.proxy_server import TestProxy

from ._kit import (
    MAIL_NAME,
    ME,
    MESSAGE,
    PASSWORD,
    PROXY_HOST,
    REMOTE_DNS,
    SCHEMES,
    USER,
    WAIT,
    target,
    url,
)

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

    from .conftest import MailTLS

pytestmark = pytest.mark.anyio


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _assert_one_tunnel(proxy: TestProxy, scheme: str, port: int) -> None:
    """The proxy opened one tunnel, to the name or the address ``scheme`` calls for, and
    saw the credentials the scheme carries."""
    (request,) = proxy.requests
    assert request.port == port
    assert request.kind == ("socks5" if scheme.startswith("socks5") else scheme)
    if scheme in REMOTE_DNS:
        assert request.host == MAIL_NAME
    else:
        assert _is_address(request.host)
    assert request.username == USER
    assert request.password == (None if scheme.startswith("socks4") else PASSWORD)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_plain_smtp_through_each_kind_of_proxy(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, scheme: str
) -> None:
    server = smtpd_server_factory()
    async with asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=url(proxy, scheme)) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE
    _assert_one_tunnel(proxy, scheme, server.port)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_starttls_through_a_proxy_checks_the_mail_servers_name(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, mail_tls: MailTLS, scheme: str
) -> None:
    server = smtpd_server_factory(tls_context=mail_tls.server, require_starttls=True)
    async with asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=url(proxy, scheme)) as smtp:
        await smtp.starttls(context=mail_tls.client)
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE
    _assert_one_tunnel(proxy, scheme, server.port)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_implicit_tls_through_a_proxy_checks_the_mail_servers_name(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, mail_tls: MailTLS, scheme: str
) -> None:
    server = smtpd_server_factory(ssl_context=mail_tls.server)
    async with asmtp.SMTP_SSL(
        target(scheme),
        server.port,
        ME,
        timeout=WAIT,
        context=mail_tls.client,
        proxy=url(proxy, scheme),
    ) as smtp:
        assert smtp.is_encrypted
        assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
    assert server.handler.deliveries[0].content == MESSAGE
    _assert_one_tunnel(proxy, scheme, server.port)


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
async def test_implicit_tls_checked_against_the_proxys_name_would_fail(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, mail_tls: MailTLS, scheme: str
) -> None:
    """Not vacuous: the certificate does not name the proxy, so a client that checked the
    proxy's name would fail where the tests above pass."""
    server = smtpd_server_factory(ssl_context=mail_tls.server)
    client = asmtp.SMTP_SSL(
        MAIL_NAME,
        server.port,
        ME,
        timeout=WAIT,
        context=mail_tls.client,
        server_hostname=PROXY_HOST,
        proxy=url(proxy, scheme),
    )
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await client.connect()
    assert "IP address mismatch" in caught.value.verify_message
    assert not client.is_connected


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
async def test_starttls_checked_against_the_proxys_name_would_fail(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, mail_tls: MailTLS, scheme: str
) -> None:
    server = smtpd_server_factory(tls_context=mail_tls.server)
    async with asmtp.SMTP(MAIL_NAME, server.port, ME, WAIT, proxy=url(proxy, scheme)) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await smtp.starttls(context=mail_tls.client, server_hostname=PROXY_HOST)
    assert "IP address mismatch" in caught.value.verify_message


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_one_shot_sendmail_and_connect_through_a_proxy(
    smtpd_server_factory: SMTPDServerFactory,
    proxy: TestProxy,
    mail_tls: MailTLS,
    scheme: str,
    tls: asmtp.TLSMode,
) -> None:
    context = {"ssl_context" if tls == "implicit" else "tls_context": mail_tls.server}
    server = smtpd_server_factory(**context)
    options = {
        "host": target(scheme),
        "port": server.port,
        "tls": tls,
        "context": mail_tls.client,
        "local_hostname": ME,
        "timeout": WAIT,
        "proxy": url(proxy, scheme),
    }
    result = await asmtp.sendmail("a@x.test", ["b@x.test"], MESSAGE, **options)  # type: ignore[arg-type]
    assert result == {}
    async with asmtp.connect(**options) as smtp:  # type: ignore[arg-type]
        assert smtp.is_encrypted
        await smtp.send_message(_message())
    first, second = server.handler.wait_for_deliveries(2)
    assert first.content == MESSAGE
    assert b"through the tunnel" in second.content
    assert len(proxy.requests) == 2


def _message() -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = "a@x.test"
    message["To"] = "b@x.test"
    message["Subject"] = "proxied"
    message.set_content("through the tunnel")
    return message


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
async def test_a_pool_opens_each_connection_through_the_proxy(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, scheme: str
) -> None:
    server = smtpd_server_factory()
    async with asmtp.SMTPPool(
        target(scheme),
        server.port,
        tls="none",
        local_hostname=ME,
        timeout=WAIT,
        max_connections=2,
        proxy=url(proxy, scheme),
    ) as pool:
        async with anyio.create_task_group() as tasks:
            for number in range(6):
                body = b"Subject: pooled %d\r\n\r\nthrough the tunnel\r\n" % number
                tasks.start_soon(pool.sendmail, "a@x.test", ["b@x.test"], body)
    assert len(server.handler.wait_for_deliveries(6)) == 6
    assert 1 <= len(proxy.requests) <= 2
    assert {request.host for request in proxy.requests} == {MAIL_NAME}


@pytest.mark.parametrize("scheme", ["socks4a", "socks5", "http"])
async def test_a_proxy_that_asks_no_credentials_needs_none(
    smtpd_server_factory: SMTPDServerFactory, scheme: str
) -> None:
    server = smtpd_server_factory()
    with TestProxy(names={MAIL_NAME: "127.0.0.1"}) as proxy:
        async with asmtp.SMTP(
            target(scheme), server.port, ME, WAIT, proxy=proxy.url(scheme)
        ) as smtp:
            assert await smtp.sendmail("a@x.test", ["b@x.test"], MESSAGE) == {}
        (request,) = proxy.requests
    assert (request.username, request.password) == (None, None)


async def test_lmtp_over_tcp_through_a_proxy_reads_each_recipients_reply(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy
) -> None:
    server = smtpd_server_factory(RecordingHandler(), lmtp=True)
    async with asmtp.LMTP(
        MAIL_NAME, server.port, ME, timeout=WAIT, proxy=url(proxy, "socks5h")
    ) as lmtp:
        refused = await lmtp.sendmail("a@x.test", ["b@x.test", "c@x.test"], MESSAGE)
    assert refused == {}
    assert server.handler.deliveries[0].rcpt_tos == ("b@x.test", "c@x.test")
    assert proxy.requests[0].host == MAIL_NAME
