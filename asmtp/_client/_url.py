"""Connection settings from one URL, for applications configured by environment variables.

::

    smtp://[user[:password]@]host[:port][?tls=...]   tls= as given (auto); port 25, 465 if implicit
    smtp+starttls://[user[:password]@]host[:port]     STARTTLS required; port 587
    smtps://[user[:password]@]host[:port]             implicit TLS; port 465
    lmtp://host[:port][?tls=...]                      LMTP (LHLO); port 2003
    lmtp:///path/to/socket                            LMTP on a Unix socket

The user name and password are percent-decoded (``%40`` for ``@``). Errors never quote
the URL, which may hold the password, and the parsed password is a
:class:`~asmtp.auth.Secret`. Pure: no I/O.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Final

from ..auth import Secret
from ._settings import LMTP_PORT, SMTP_SSL_PORT, TLSMode, check_tls

__all__ = ["ServerURL", "parse_url"]

SUBMISSION_PORT: Final = 587
"""RFC 6409 message submission."""

# scheme: (default port, the TLS policy it sets or None, LMTP). Port 0 leaves the choice to
# the policy, as the port= keyword does: 465 for implicit TLS, else 25.
_SCHEMES: Final[dict[str, tuple[int, TLSMode | None, bool]]] = {
    "smtp": (0, None, False),
    "smtp+starttls": (SUBMISSION_PORT, "starttls", False),
    "smtps": (SMTP_SSL_PORT, "implicit", False),
    "lmtp": (LMTP_PORT, None, True),
}
_ENCODE_HINT: Final = (
    "percent-encode '@', ':', '/', '?' and '#' in the user name and password "
    "(urllib.parse.quote(password, safe=''))"
)


@dataclass(frozen=True, slots=True)
class ServerURL:
    """What a URL says: where the server is, how to secure and authenticate, SMTP or LMTP."""

    host: str
    port: int
    """0: the policy's default port (465 for implicit TLS, else 25)."""
    tls: TLSMode | None
    """The policy the scheme or ``?tls=`` sets; ``None`` leaves it to ``tls=``."""
    lmtp: bool
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)


def parse_url(url: object) -> ServerURL:
    """The settings in ``url``; :class:`ValueError` (never quoting it) when malformed."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"url is not a valid URL: {_ENCODE_HINT}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        known = ", ".join(f"{name}://" for name in _SCHEMES)
        shown = f"{scheme}://" if scheme else "no scheme"
        raise ValueError(f"url must start with one of {known}, not {shown}")
    default_port, tls, lmtp = _SCHEMES[scheme]
    if parts.fragment:
        raise ValueError(f"url has a '#' fragment: {_ENCODE_HINT}")
    tls = _query_tls(parts.query, tls, scheme)
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = Secret(urllib.parse.unquote(parts.password)) if parts.password else None
    if password is not None and username is None:
        raise ValueError("url has a password but no user name")
    path = urllib.parse.unquote(parts.path)
    if lmtp and not parts.netloc and path.startswith("/"):
        if username is not None or tls not in (None, "auto", "none"):
            raise ValueError("an lmtp:/// Unix socket URL takes no user name and no TLS")
        return ServerURL(path, 0, tls, lmtp=True)
    if not parts.hostname:
        raise ValueError(f"url names no host ({scheme}://host:port): {_ENCODE_HINT}")
    if path not in ("", "/"):
        raise ValueError(f"url has a path; a {scheme}:// URL names a host and port only")
    return ServerURL(parts.hostname, port or default_port, tls, lmtp, username, password)


def _query_tls(query: str, tls: TLSMode | None, scheme: str) -> TLSMode | None:
    """The scheme's policy, or the one ``?tls=`` gives; a conflict is a :class:`ValueError`."""
    if not query:
        return tls
    # Nothing of the query is quoted: an unencoded '?' in a password starts it.
    fields = urllib.parse.parse_qs(query, keep_blank_values=True)
    if set(fields) != {"tls"} or len(fields["tls"]) != 1:
        raise ValueError(f"url takes one query parameter, tls=, and nothing else; {_ENCODE_HINT}")
    try:
        asked = check_tls(fields["tls"][0])
    except ValueError:
        raise ValueError("url: tls= must be auto, implicit, starttls or none") from None
    if tls is not None and asked != tls:
        raise ValueError(f"url: {scheme}:// means tls={tls!r}, not tls={asked!r}")
    return asked
