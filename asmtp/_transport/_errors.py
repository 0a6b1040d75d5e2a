"""Connection failures in one vocabulary, whichever library made them.

anyio wraps the error of every address it tried in ``OSError("All connection attempts
failed")``, asyncio raises the per-address error itself (or, on Python 3.11, an ``OSError``
with only their texts), and the resolver's ``gaierror`` names no host. Each transport hands
what it got here, once, and raises what this returns: the builtin class a caller's ``except``
expects (``ConnectionRefusedError``, ``socket.gaierror``, ``TimeoutError``...) with a
message that names the host and port. Performs no I/O.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence

__all__ = ["address_text", "connect_failed", "unresolvable"]


def address_text(host: str, port: int) -> str:
    """``host:port``, ``[v6]:port``, or a Unix socket's path alone."""
    if host.startswith("/"):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unresolvable(host: str, port: int, exc: socket.gaierror) -> socket.gaierror:
    """``exc`` (the resolver's "Name or service not known") naming what did not resolve."""
    reason = exc.strerror or str(exc)
    return socket.gaierror(
        exc.errno,
        f"cannot connect to {address_text(host, port)}: name resolution failed: {reason}",
    )


def connect_failed(host: str, port: int, errors: Sequence[OSError]) -> OSError:
    """One error for a connection whose every address failed with ``errors`` (in order).

    The class is that of the most telling error: a refusal (the host answered, nothing
    listens) over the rest, else the first. The message names ``host:port`` and each
    distinct reason, in the system's words.
    """
    if not errors:  # pragma: no cover - a connect fails with at least one error
        return OSError(f"cannot connect to {address_text(host, port)}")
    chosen = next((e for e in errors if isinstance(e, ConnectionRefusedError)), errors[0])
    reasons = ", ".join(dict.fromkeys(_reason(each) for each in errors))
    text = f"cannot connect to {address_text(host, port)}: {reasons}"
    # Builtin classes only: a library's own subclass may take other arguments.
    cls = type(chosen) if type(chosen).__module__ in ("builtins", "socket") else OSError
    return cls(text) if chosen.errno is None else cls(chosen.errno, text)


def _reason(exc: OSError) -> str:
    """The system's words for ``exc``: asyncio's and trio's own add the address to them."""
    number = exc.errno
    if number is not None and number > 0 and number in errno.errorcode:
        return os.strerror(number)
    return exc.strerror or str(exc) or type(exc).__name__
