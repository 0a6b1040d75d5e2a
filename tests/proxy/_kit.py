"""Shared by the proxy tests: names, credentials, URLs."""

from __future__ import annotations

from typing import Final

from support.proxy_server import TestProxy

ME: Final = "client.test"
WAIT: Final = 5.0
"""Per-step timeout of every client here: a hang fails fast."""
MESSAGE: Final = b"Subject: proxied\r\n\r\nthrough the tunnel\r\n"
USER: Final = "proxy-user"
PASSWORD: Final = "proxy-Pa55word-n0t-in-logs"

MAIL_NAME: Final = "mail.test"
"""The mail server's name: only the test proxy resolves it (to 127.0.0.1), so a client that
reaches the server by this name through a proxy proved the proxy resolved it."""
PROXY_HOST: Final = "127.0.0.1"
"""The proxies' address, on none of the server certificate's names."""

SCHEMES: Final = ("socks4", "socks4a", "socks5", "socks5h", "http")
REMOTE_DNS: Final = frozenset({"socks4a", "socks5h", "http"})


def target(scheme: str) -> str:
    """The server's name for ``scheme``: one only the proxy knows where the proxy resolves
    names, else ``localhost`` (resolved here; the proxy then sees an address)."""
    return MAIL_NAME if scheme in REMOTE_DNS else "localhost"


def url(proxy: TestProxy, scheme: str, password: str = PASSWORD) -> str:
    """``proxy``'s URL for ``scheme`` with the test user (SOCKS 4 has a user id only)."""
    if scheme.startswith("socks4"):
        return proxy.url(scheme, USER)
    return proxy.url(scheme, USER, password)


def started_proxy(**options: object) -> TestProxy:
    """A started :class:`TestProxy` requiring the test credentials, resolving MAIL_NAME."""
    options.setdefault("credentials", (USER, PASSWORD))
    options.setdefault("names", {MAIL_NAME: "127.0.0.1"})
    return TestProxy(**options).start()  # type: ignore[arg-type]
