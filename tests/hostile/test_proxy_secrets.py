"""A proxy's password never leaks: not to logs, the transcript, reprs, errors, nor frames.

Sends go through a SOCKS5 and an HTTP proxy with DEBUG logging and ``set_debuglevel(1)``
on, and logins the proxy refuses raise :class:`asmtp.ProxyError`; then everything shown is
searched for the password and its base64 forms (HTTP's Basic credentials carry it in
base64), and so is every frame the errors' tracebacks keep (python-socks holds it in clear:
none of its frames may stay reachable). ``conftest.py`` here also searches what pytest
captured.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import asmtp
from support.proxy_server import TestProxy

from ._kit import PASSWORD, leaked
from .test_secrets_in_frames import assert_no_secret_in_frames, failure_of

if TYPE_CHECKING:
    from support.fixtures import SMTPDServerFactory

pytestmark = pytest.mark.anyio

PROXY_USER = "proxy-user"
SCHEMES = ("socks5", "socks5h", "http")


@pytest.fixture
def proxy() -> Iterator[TestProxy]:
    with TestProxy(credentials=(PROXY_USER, PASSWORD)) as started:
        yield started


def _url(proxy: TestProxy, scheme: str, password: str = PASSWORD) -> str:
    return proxy.url(scheme, PROXY_USER, password)


def _shown(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args, the chain, the formatted traceback."""
    parts = [str(exc), repr(exc), repr(exc.args)]
    parts += traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "\n".join(parts)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_no_proxy_password_in_logs_transcript_or_reprs(
    smtpd_server_factory: SMTPDServerFactory,
    proxy: TestProxy,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    scheme: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asmtp")
    server = smtpd_server_factory()
    smtp = asmtp.SMTP("localhost", server.port, "client.test", 5.0, proxy=_url(proxy, scheme))
    smtp.set_debuglevel(1)
    async with smtp:
        await smtp.sendmail("a@x.test", ["b@x.test"], b"Subject: x\r\n\r\nx\r\n")
    async with asmtp.SMTPPool(
        "localhost", server.port, tls="none", timeout=5.0, proxy=_url(proxy, scheme)
    ) as pool:
        await pool.sendmail("a@x.test", ["b@x.test"], b"Subject: y\r\n\r\ny\r\n")
        shown = [repr(smtp), repr(pool), repr(asmtp.Proxy.from_url(_url(proxy, scheme)))]
    assert len(proxy.requests) == 2
    assert all(request.password == PASSWORD for request in proxy.requests)
    assert "through " + scheme in caplog.text, "the proxy was not logged: this proves nothing"
    everything = {
        "log": caplog.text,
        "stderr": capsys.readouterr().err,
        "reprs": "\n".join(shown),
    }
    assert {where: leaked(text) for where, text in everything.items() if leaked(text)} == {}


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_no_proxy_password_in_the_error_or_the_frames_of_a_refused_login(
    smtpd_server_factory: SMTPDServerFactory, scheme: str
) -> None:
    """The proxy expects another password, so the one sent (PASSWORD) is refused."""
    server = smtpd_server_factory()
    with TestProxy(credentials=(PROXY_USER, "the-right-one")) as proxy:
        exc = await failure_of(
            lambda: asmtp.SMTP(
                "localhost", server.port, timeout=5.0, proxy=_url(proxy, scheme)
            ).connect()
        )
        assert proxy.refused_logins == 1
    assert isinstance(exc, asmtp.ProxyError)
    assert leaked(_shown(exc)) == []
    assert_no_secret_in_frames(exc)
