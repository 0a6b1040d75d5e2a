"""Which proxy to reach the server through: its URL, parsed and checked, and its error.

Pure: no I/O and no third-party import, so a bad proxy URL fails where it is given, before
anything is opened. The password is kept as a :class:`~asmtp.auth.Secret` from the moment
the URL is parsed; no repr, ``str()`` or error message here ever shows it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Final, Literal, get_args
from urllib.parse import quote, unquote, urlsplit

from ..auth import Secret

__all__ = ["Proxy", "ProxyError", "ProxyScheme", "authority"]

ProxyScheme = Literal["socks4", "socks4a", "socks5", "socks5h", "http"]
"""The kinds of proxy: SOCKS 4 (``socks4a``: the proxy resolves the server's name), SOCKS 5
(``socks5h``: the proxy resolves the name), and an HTTP proxy's CONNECT tunnel (the proxy
always resolves the name)."""

SOCKS_PORT: Final = 1080
"""IANA's port for SOCKS, the default in a ``socks*://`` URL without one."""

_REMOTE_DNS: Final = frozenset({"socks4a", "socks5h", "http"})
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_MASK: Final = "********"


class ProxyError(ConnectionError):
    """The proxy could not be reached, refused the login, or did not open the tunnel.

    Raised when connecting, before a byte of SMTP: the mail server was never reached. A
    :class:`ConnectionError`, so ``except OSError`` around a connection catches it as it
    catches a refused connection. ``error_code`` is the proxy's answer where it gave one
    (the SOCKS reply code, or the HTTP status such as 407), else ``None``. The message
    names the proxy without its password.
    """

    def __init__(self, message: str, error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclasses.dataclass(frozen=True, slots=True)
class Proxy:
    """A SOCKS or HTTP CONNECT proxy through which the client reaches the SMTP server.

    Usually given as a URL (``proxy="socks5h://user:pw@proxy.example:1080"``), which
    :meth:`from_url` parses; build one directly to keep a password out of URLs and
    environment strings. ``password`` is stored as a :class:`~asmtp.auth.Secret`.
    SOCKS 4 has a user id but no password. Raises :class:`ValueError` for a setting that
    cannot work, never quoting the password.
    """

    scheme: ProxyScheme
    host: str
    port: int
    username: str | None = None
    password: Secret | None = dataclasses.field(default=None, repr=False, compare=False)

    def __init__(
        self,
        scheme: ProxyScheme,
        host: str,
        port: int = 0,
        *,
        username: str | None = None,
        password: str | Secret | None = None,
    ) -> None:
        secret = Secret(password) if isinstance(password, str) else password
        del password  # tracebacks keep every frame's locals: only the Secret stays
        if scheme not in get_args(ProxyScheme):
            choices = ", ".join(get_args(ProxyScheme))
            raise ValueError(f"proxy scheme must be one of {choices}, not {scheme!r}")
        if not port and scheme != "http":
            port = SOCKS_PORT
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"the proxy's port must be 1 to 65535, not {port!r}")
        if not host or _CONTROL.search(host) or " " in host:
            raise ValueError(f"the proxy's host name is empty or malformed: {host!r}")
        if username is not None and (_CONTROL.search(username) or not _encodes(username)):
            raise ValueError("the proxy's user name holds a control character or a lone surrogate")
        if secret is not None and username is None:
            raise ValueError("a proxy password needs a user name")
        if secret is not None and scheme in ("socks4", "socks4a"):
            raise ValueError("SOCKS 4 has no password (its user id is the URL's user name)")
        if scheme == "http" and username is not None and ":" in username:
            raise ValueError("an HTTP proxy's user name cannot hold ':' (RFC 7617 §2)")
        # Refused now, never quoted, if it cannot be sent (a lone surrogate from os.environ).
        length = len(secret.utf8("proxy password")) if secret is not None else 0
        if scheme.startswith("socks5"):
            # RFC 1929 §2: each has one length byte, so at most 255 bytes (UTF-8 here).
            if len(username.encode("utf-8") if username else b"") > 255:
                raise ValueError("a SOCKS5 user name is at most 255 bytes")
            if length > 255:
                raise ValueError("a SOCKS5 password is at most 255 bytes")
        setter = object.__setattr__
        setter(self, "scheme", scheme)
        setter(self, "host", host)
        setter(self, "port", port)
        setter(self, "username", username)
        setter(self, "password", secret)

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """Parse ``socks5://user:password@host:1080`` (or ``socks4://``, ``socks4a://``,
        ``socks5h://``, ``http://``).

        User name and password are percent-decoded. A SOCKS URL without a port means
        1080; an HTTP proxy's port must be given. Raises :class:`ValueError` (the message
        never quotes the URL, which may hold the password).
        """
        if not isinstance(url, str):
            raise TypeError(f"proxy must be a URL string or an asmtp.Proxy, not {type(url)}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in get_args(ProxyScheme):
            choices = ", ".join(f"{name}://" for name in get_args(ProxyScheme))
            raise ValueError(f"a proxy URL starts with one of {choices}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("a proxy URL holds no path, query or fragment")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the proxy URL's port is not a number from 0 to 65535") from None
        if port is None and scheme == "http":
            raise ValueError("an HTTP proxy URL needs a port (there is no standard one)")
        username = unquote(parts.username) if parts.username else None
        password = None if parts.password is None else Secret(unquote(parts.password))
        return cls(
            scheme,  # type: ignore[arg-type]  # checked against the Literal's values above
            parts.hostname or "",
            port or 0,
            username=username,
            password=password,
        )

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy, not this host, resolves the server's name."""
        return self.scheme in _REMOTE_DNS

    @property
    def address(self) -> str:
        """``host:port`` of the proxy (an IPv6 address in brackets)."""
        return authority(self.host, self.port)

    def __str__(self) -> str:
        """The URL with the password masked: safe in logs and messages."""
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="") + (f":{_MASK}" if self.password else "") + "@"
        return f"{self.scheme}://{user}{self.address}"

    def __repr__(self) -> str:
        return f"Proxy({str(self)!r})"


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def authority(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (RFC 3986 §3.2.2)."""
    try:
        ipv6 = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        ipv6 = False
    return f"[{host}]:{port}" if ipv6 else f"{host}:{port}"
