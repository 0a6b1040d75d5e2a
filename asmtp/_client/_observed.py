"""Sends reported to the installed observer (``_hooks``): one watch per message.

Callers check :func:`~._hooks.current` first and come here only when an observer is
installed, so an unobserved send pays for that one check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from .._results import SendResult
from ._envelope import Outgoing
from ._hooks import ConnectionWatch, Observer, Peer, SendWatch

__all__ = ["observed", "watch_send"]


def watch_send(observer: Observer, peer: Peer, item: Outgoing) -> SendWatch:
    """The observer's watch for ``item``; its recipients as given (none for a
    :meth:`~asmtp.SMTP.send_message` that takes them from the headers)."""
    to_addrs = item.to_addrs
    recipients: Sequence[str] = (to_addrs,) if isinstance(to_addrs, str) else to_addrs or ()
    return observer.send(peer, item.from_addr or "", recipients)


async def observed(
    observer: Observer,
    peer: Peer,
    item: Outgoing,
    send: Awaitable[SendResult],
    connection: Callable[[], ConnectionWatch | None],
) -> SendResult:
    """Await ``send`` (of ``item`` to ``peer``) and tell ``observer`` what became of it;
    ``connection`` gives the watch of the connection it went out on, once it is over."""
    watch = watch_send(observer, peer, item)
    try:
        with watch.active():
            result = await send
    except BaseException as exc:
        watch.finished(exc, connection())
        raise
    watch.finished(result, connection())
    return result
