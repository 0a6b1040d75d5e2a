"""Sends reported to the installed observer (``_hooks``): one watch per message.

Callers check :func:`~._hooks.current` first and come here only when an observer is
installed, so an unobserved send pays for that one check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .._results import SendResult
from ._envelope import Outgoing
from ._hooks import ConnectionWatch, Observer, Peer, SendWatch

__all__ = ["WatchedPeer", "observed", "observed_session", "watch_send"]


class WatchedPeer(Peer, Protocol):
    """A peer that keeps the watch of its connection: a session."""

    @property
    def watch(self) -> ConnectionWatch:
        """The observer's view of the connection (kept after the close)."""
        ...


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


def observed_session(
    observer: Observer, session: WatchedPeer, item: Outgoing, send: Awaitable[SendResult]
) -> Awaitable[SendResult]:
    """:func:`observed` for a send on ``session``'s own connection.

    A function of its own, so that the caller's frame holds no closure cell for the
    session while its send runs.
    """
    return observed(observer, session, item, send, lambda: session.watch)
