"""asmtp.Proxy: URLs parsed into scheme, address and credentials; the password never shown."""

from __future__ import annotations

import pickle

import pytest

import asmtp
from asmtp.auth import Secret


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "remote_dns"),
    [
        ("socks4://proxy.example:1081", "socks4", "proxy.example", 1081, False),
        ("socks4a://proxy.example", "socks4a", "proxy.example", 1080, True),
        ("socks5://10.0.0.1:1080", "socks5", "10.0.0.1", 1080, False),
        ("SOCKS5H://Proxy.Example:9050", "socks5h", "proxy.example", 9050, True),
        ("http://[2001:db8::1]:3128", "http", "2001:db8::1", 3128, True),
    ],
)
def test_a_proxy_url_gives_scheme_address_and_where_names_are_resolved(
    url: str, scheme: str, host: str, port: int, remote_dns: bool
) -> None:
    proxy = asmtp.Proxy.from_url(url)
    assert (proxy.scheme, proxy.host, proxy.port) == (scheme, host, port)
    assert proxy.remote_dns is remote_dns
    assert proxy.username is None and proxy.password is None


def test_credentials_are_percent_decoded_and_the_password_kept_as_a_secret() -> None:
    proxy = asmtp.Proxy.from_url("socks5h://me%40corp:p%3As%2Fw%40rd@proxy:1080")
    assert proxy.username == "me@corp"
    assert isinstance(proxy.password, Secret)
    assert proxy.password.reveal() == "p:s/w@rd"


@pytest.mark.parametrize(
    "proxy",
    [
        asmtp.Proxy.from_url("http://user:hunter2-secret@proxy:3128"),
        asmtp.Proxy("socks5", "proxy", username="user", password="hunter2-secret"),
        asmtp.Proxy("socks5", "proxy", username="user", password=Secret("hunter2-secret")),
    ],
    ids=["url", "str", "secret"],
)
def test_the_password_shows_in_no_repr_or_str(proxy: asmtp.Proxy) -> None:
    shown = [repr(proxy), str(proxy), repr(asmtp.SMTP("mail.test", proxy=proxy))]
    assert all("hunter2" not in text for text in shown)
    assert str(proxy).endswith("://user:********@proxy:" + str(proxy.port))
    assert repr(proxy) == f"Proxy({str(proxy)!r})"


def test_a_url_without_credentials_shows_none() -> None:
    assert str(asmtp.Proxy.from_url("socks4://id@proxy")) == "socks4://id@proxy:1080"
    assert str(asmtp.Proxy.from_url("http://proxy:8080")) == "http://proxy:8080"


def test_a_proxy_error_is_a_connection_error_that_pickles() -> None:
    error = asmtp.ProxyError("the HTTP proxy http://proxy:3128 refused the login", 407)
    assert isinstance(error, ConnectionError)
    assert asmtp.errors.ProxyError is asmtp.ProxyError
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - bytes made just above
    assert (str(copy), copy.error_code) == (str(error), 407)
