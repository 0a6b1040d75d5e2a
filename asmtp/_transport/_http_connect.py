"""An HTTP proxy's CONNECT tunnel (RFC 9110 §9.3.6), read to the last byte of the answer.

Ours rather than python-socks': its HTTP client reads the proxy's answer with one read of
up to 64 KiB and drops whatever came after the status line. SMTP servers speak first, so
that read can swallow the server's greeting when it arrives in the same segment as the
proxy's ``200``, and the client then waits for a greeting that already came. Here the
answer is read one byte at a time up to its blank line, never further (it is a few dozen
bytes, once per connection). Knows nothing of SMTP; the password goes only into the
request, never into a message.
"""

from __future__ import annotations

import base64
import re
from typing import Final, Protocol

from ..auth import Secret
from ._proxy_url import ProxyError, authority

__all__ = ["MAX_ANSWER_BYTES", "Wire", "connect_request", "open_tunnel", "read_head", "read_status"]

MAX_ANSWER_BYTES: Final = 16 * 1024
"""The longest answer head read from a proxy; a longer one is refused (no unbounded buffer)."""

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE: Final = re.compile(rb"HTTP/\d\.\d (\d{3})(?: ([^\r\n]*))?\r?\n")
_REASON_SHOWN: Final = 200


class Wire(Protocol):
    """The connection to the proxy: writes, and reads of at most one byte."""

    async def send(self, data: bytes) -> None: ...

    async def receive_byte(self) -> bytes:
        """One byte, or ``b""`` once the proxy closed the connection."""
        ...


def connect_request(host: str, port: int, username: str | None, password: Secret | None) -> bytes:
    """The CONNECT request for ``host``:``port``, with Basic credentials when given.

    RFC 9110 §9.3.6: authority-form target, the same in Host; RFC 7617: the credentials are
    ``base64(user ":" password)`` in UTF-8.
    """
    name = host if host.isascii() else host.encode("idna").decode("ascii")
    target = authority(name, port).encode("ascii")
    lines = [b"CONNECT " + target + b" HTTP/1.1", b"Host: " + target, b"User-Agent: asmtp"]
    if username is not None:
        secret = password.utf8("proxy password") if password is not None else b""
        credentials = base64.b64encode(username.encode("utf-8") + b":" + secret)
        lines.append(b"Proxy-Authorization: Basic " + credentials)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def read_head(wire: Wire, where: str) -> bytes:
    """The proxy's answer up to and including its blank line; not one byte more."""
    head = bytearray()
    while not (head.endswith(b"\r\n\r\n") or head.endswith(b"\n\n")):
        byte = await wire.receive_byte()
        if not byte:
            raise ProxyError(f"the HTTP proxy {where} closed the connection before answering")
        head += byte
        if len(head) > MAX_ANSWER_BYTES:
            raise ProxyError(
                f"the HTTP proxy {where} sent an answer longer than {MAX_ANSWER_BYTES} bytes"
            )
    return bytes(head)


def read_status(head: bytes, where: str) -> tuple[int, str]:
    """``(status code, reason)`` from the answer's status line; :class:`ProxyError` if none."""
    match = _STATUS_LINE.match(head)
    if match is None:
        shown = head[:40].decode("ascii", "backslashreplace")
        raise ProxyError(f"the HTTP proxy {where} answered with no HTTP status line: {shown!r}")
    reason = (match.group(2) or b"").decode("ascii", "replace")
    printable = "".join(c if c.isprintable() else "?" for c in reason)
    return int(match.group(1)), printable[:_REASON_SHOWN]


async def open_tunnel(
    wire: Wire,
    host: str,
    port: int,
    *,
    username: str | None,
    password: Secret | None,
    where: str,
) -> None:
    """Ask for a tunnel to ``host``:``port``; returns once it is open.

    ``where`` names the proxy in messages (without its password). Raises
    :class:`ProxyError` with the HTTP status as ``error_code`` when the proxy refuses (407:
    credentials missing or refused), and when it closes or answers nonsense.
    """
    await wire.send(connect_request(host, port, username, password))
    code, reason = read_status(await read_head(wire, where), where)
    if password is not None:
        reason = reason.replace(password.reveal(), "********")  # a proxy echoing it back
    # RFC 9110 §9.3.6: any 2xx answer means the tunnel is open after the header section.
    if 200 <= code < 300:
        return
    # 407 (RFC 9110 §15.5.8) asks for credentials; some proxies (tinyproxy) answer wrong
    # ones with 401.
    if code in (401, 407):
        why = "refused the login" if username is not None else "requires a login"
        why += f" (for a tunnel to {host}:{port})"
    else:
        why = f"refused the tunnel to {host}:{port}"
    raise ProxyError(f"the HTTP proxy {where} {why}: {code} {reason}".rstrip(), code)
