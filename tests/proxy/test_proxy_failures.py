"""A proxy that fails says so: ProxyError (a ConnectionError) naming the proxy and its reason.

Refused logins, refused tunnels, an unreachable destination, a proxy that hangs up in the
middle of the negotiation or is not there at all: each raises :class:`asmtp.ProxyError`
from ``connect()`` before any SMTP, with the proxy's code where it gave one. A proxy that
never answers runs into the timeout; one that drops the tunnel later is a server gone
away. Bad settings fail where they are given.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

import asmtp
from support.proxy_server import TestProxy

from ._kit import ME, PASSWORD, SCHEMES, USER, WAIT, started_proxy, target, url

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def misbehaving() -> Iterator[list[TestProxy]]:
    """Proxies a test starts with ``started_proxy(...)``, stopped afterwards."""
    proxies: list[TestProxy] = []
    yield proxies
    for proxy in proxies:
        proxy.stop()


async def _proxy_error(client: asmtp.SMTP) -> asmtp.ProxyError:
    with pytest.raises(asmtp.ProxyError) as caught:
        await client.connect()
    assert not client.is_connected
    assert isinstance(caught.value, ConnectionError)
    assert PASSWORD not in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("scheme", "code", "reason"),
    [
        ("socks5", None, "Username and password authentication failure"),
        ("http", 407, "refused the login"),
    ],
)
async def test_a_refused_proxy_login_raises_proxy_error(
    smtpd_server_factory: SMTPDServerFactory,
    proxy: TestProxy,
    scheme: str,
    code: int | None,
    reason: str,
) -> None:
    server = smtpd_server_factory()
    wrong = url(proxy, scheme, password="not-the-password")
    error = await _proxy_error(asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=wrong))
    assert error.error_code == code
    assert reason in str(error)
    assert f"{scheme}://{USER}:********@127.0.0.1:{proxy.port}" in str(error)
    assert "not-the-password" not in str(error)
    assert server.handler.commands == []


@pytest.mark.parametrize(
    ("scheme", "reason"),
    [("socks5", "No acceptable authentication methods"), ("http", "requires a login")],
)
async def test_no_credentials_for_a_proxy_that_requires_them(
    smtpd_server_factory: SMTPDServerFactory, proxy: TestProxy, scheme: str, reason: str
) -> None:
    server = smtpd_server_factory()
    client = asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=proxy.url(scheme))
    assert reason in str(await _proxy_error(client))


@pytest.mark.parametrize(("scheme", "code"), [("socks4", 0x5B), ("socks5", 2), ("http", 403)])
async def test_a_refused_tunnel_raises_proxy_error_with_the_proxys_code(
    smtpd_server_factory: SMTPDServerFactory,
    misbehaving: list[TestProxy],
    scheme: str,
    code: int,
) -> None:
    server = smtpd_server_factory()
    misbehaving.append(proxy := started_proxy(misbehave="refuse"))
    client = asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=url(proxy, scheme))
    error = await _proxy_error(client)
    assert error.error_code == code
    assert f"{target(scheme)}:{server.port}" in str(error)


@pytest.mark.parametrize(("scheme", "code"), [("socks4a", 0x5B), ("socks5h", 5), ("http", 502)])
async def test_a_destination_the_proxy_cannot_reach_raises_proxy_error(
    proxy: TestProxy, closed_port: int, scheme: str, code: int
) -> None:
    client = asmtp.SMTP(target(scheme), closed_port, ME, WAIT, proxy=url(proxy, scheme))
    assert (await _proxy_error(client)).error_code == code


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_proxy_hanging_up_mid_negotiation_raises_proxy_error(
    smtpd_server_factory: SMTPDServerFactory, misbehaving: list[TestProxy], scheme: str
) -> None:
    server = smtpd_server_factory()
    misbehaving.append(proxy := started_proxy(misbehave="close-mid-negotiation"))
    client = asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=url(proxy, scheme))
    error = await _proxy_error(client)
    assert str(proxy.port) in str(error)
    assert len(proxy.requests) == 1  # it hung up after the request, as asked


@pytest.mark.parametrize("scheme", ["socks4", "socks5h", "http"])
async def test_a_proxy_that_is_not_there_raises_proxy_error(closed_port: int, scheme: str) -> None:
    where = f"{scheme}://{USER}@127.0.0.1:{closed_port}"
    client = asmtp.SMTP("localhost", 25, ME, WAIT, proxy=where)
    error = await _proxy_error(client)
    assert "cannot reach" in str(error)
    assert "Connection refused" in str(error)


@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_a_silent_proxy_runs_into_the_timeout(scheme: str) -> None:
    with socket.socket() as listener:  # accepts (in its backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        where = f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
        client = asmtp.SMTP("localhost", 25, ME, 0.3, proxy=where)
        began = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await client.connect()
    assert time.monotonic() - began < WAIT
    assert "took longer than" in str(caught.value)
    assert not client.is_connected


@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_a_tunnel_dropped_after_the_greeting_is_the_server_going_away(
    smtpd_server_factory: SMTPDServerFactory, misbehaving: list[TestProxy], scheme: str
) -> None:
    server = smtpd_server_factory()
    misbehaving.append(proxy := started_proxy(drop_after=1))
    client = asmtp.SMTP(target(scheme), server.port, ME, WAIT, proxy=url(proxy, scheme))
    code, _ = await client.connect()
    assert code == 220
    with pytest.raises(asmtp.SMTPServerDisconnected):
        await client.ehlo()
    assert not client.is_connected


async def test_a_greeting_in_the_same_segment_as_the_proxys_answer_is_kept(
    smtpd_server_factory: SMTPDServerFactory, misbehaving: list[TestProxy]
) -> None:
    """An SMTP server speaks first: its greeting may arrive glued to the proxy's ``200``.
    Reading the proxy's answer must stop at its blank line, or the greeting is lost."""
    server = smtpd_server_factory()
    misbehaving.append(proxy := started_proxy(misbehave="glue-greeting"))
    async with asmtp.SMTP(target("http"), server.port, ME, WAIT, proxy=url(proxy, "http")) as smtp:
        assert await smtp.sendmail("a@x.test", ["b@x.test"], b"Subject: x\r\n\r\nx\r\n") == {}


async def test_a_unix_socket_server_cannot_be_reached_through_a_proxy(proxy: TestProxy) -> None:
    client = asmtp.LMTP("/run/dovecot/lmtp", proxy=url(proxy, "socks5"))
    with pytest.raises(ValueError, match="not the Unix socket"):
        await client.connect()
    assert proxy.requests == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("ftp://proxy:21", "a proxy URL starts with one of"),
        ("http://proxy", "needs a port"),
        ("socks5://proxy:70000", "port is not a number"),
        ("socks4://user:pw@proxy", "SOCKS 4 has no password"),
        ("socks5://:pw@proxy", "needs a user name"),
        ("socks5://proxy:1080/path", "no path"),
    ],
)
def test_a_bad_proxy_url_fails_where_it_is_given(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        asmtp.SMTP("localhost", proxy=bad)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scheme": "socks6", "host": "proxy"}, "scheme must be one of"),
        ({"scheme": "http", "host": "proxy"}, "port must be 1 to 65535"),
        ({"scheme": "http", "host": "proxy", "port": 3128, "username": "us:er"}, "cannot hold"),
        ({"scheme": "socks5", "host": "pro xy"}, "malformed"),
        ({"scheme": "socks5", "host": "proxy", "username": "a\nb"}, "control character"),
        (
            {"scheme": "socks5", "host": "proxy", "username": "u", "password": "x" * 256},
            "255 bytes",
        ),
        (
            {"scheme": "http", "host": "proxy", "port": 1, "username": "u", "password": "pw\udcff"},
            "not valid Unicode",
        ),
    ],
)
def test_a_bad_proxy_fails_where_it_is_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asmtp.Proxy(**options)


async def _elsewhere(
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None,
    server_hostname: str | None,
    source_address: tuple[str, int] | None,
    deadline: float,
) -> NoReturn:
    raise AssertionError("never called")


def test_proxy_sock_and_connector_exclude_each_other(proxy: TestProxy) -> None:
    with socket.socket() as sock, pytest.raises(ValueError, match="proxy and sock"):
        asmtp.SMTP("localhost", proxy=url(proxy, "http"), sock=sock)
    with pytest.raises(ValueError, match="proxy and connector"):
        asmtp.SMTP("localhost", proxy=url(proxy, "http"), connector=_elsewhere)


def test_a_socks_proxy_without_python_socks_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extra is imported only for SOCKS, when the client is made; HTTP needs nothing."""
    monkeypatch.setitem(sys.modules, "python_socks", None)
    for scheme in ("socks4", "socks5h"):
        with pytest.raises(ImportError, match=r"pip install 'asmtp\[proxy\]'"):
            asmtp.SMTP("localhost", proxy=f"{scheme}://127.0.0.1:1080")
        with pytest.raises(ImportError, match=r"asmtp\[proxy\]"):
            asmtp.SMTPPool("localhost", proxy=f"{scheme}://127.0.0.1:1080")
    assert repr(asmtp.SMTP("localhost", proxy="http://127.0.0.1:3128"))
