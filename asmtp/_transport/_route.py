"""Which way to the server: dialled directly, through a proxy, or over the caller's stream.

The public ``proxy=`` and ``sock=`` keywords become a :class:`~asmtp._transport.Connector`
here, so the client carries one setting whichever way is chosen.
"""

from __future__ import annotations

from ._adopt import PreConnected, StreamConnector
from ._connect import connect
from ._interface import Connector
from ._proxy import ProxyConnector
from ._proxy_url import Proxy

__all__ = ["connector_for"]


def connector_for(
    connector: Connector = connect,
    *,
    proxy: str | Proxy | None = None,
    sock: PreConnected | None = None,
) -> Connector:
    """The connector for ``proxy`` (a URL or :class:`Proxy`) or ``sock``, else ``connector``.

    Raises :class:`ValueError` when more than one way is given or the proxy URL is bad,
    :class:`TypeError` for a ``sock`` that is no socket or stream, and
    :class:`ImportError` naming the extra when a SOCKS proxy lacks python-socks.
    """
    chosen = [name for name, value in (("proxy", proxy), ("sock", sock)) if value is not None]
    if connector is not connect:
        chosen.append("connector")
    if len(chosen) > 1:
        raise ValueError(f"give one of proxy=, sock= and connector=, not {' and '.join(chosen)}")
    if proxy is not None:
        return ProxyConnector(proxy if isinstance(proxy, Proxy) else Proxy.from_url(proxy))
    if sock is not None:
        return StreamConnector(sock)
    return connector
