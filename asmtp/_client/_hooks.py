"""The observer interface: what the client tells an instrumentation about its work.

The client calls an :class:`Observer` (when one is installed) as connections open, secure,
authenticate and close, and as each message is sent; an instrumentation (such as
:mod:`asmtp.instrumentation.otel`) turns the calls into spans and metrics. Nothing here
depends on an instrumentation library, and without an observer the cost is one global
read per connection and per message.

What an observer is given never holds credentials or message content: addresses are
given so that an observer may count or keep their domains, or keep them whole when its
user asked for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from .._results import SendResult

__all__ = [
    "UNWATCHED",
    "ConnectionWatch",
    "Observer",
    "Peer",
    "SendWatch",
    "current",
    "install",
    "uninstall",
    "watch_connection",
]


class Peer(Protocol):
    """The server a connection or a send talks to."""

    @property
    def host(self) -> str:
        """The host name or address (a Unix socket's path starts with ``/``)."""
        ...

    @property
    def port(self) -> int:
        """The port (0 for a Unix socket)."""
        ...

    @property
    def lmtp(self) -> bool:
        """True for LMTP (RFC 2033)."""
        ...


class ConnectionWatch(Protocol):
    """One connection's life, from before the connect to the close."""

    def greeted(self, code: int) -> None:
        """The transport is open and the greeting (``code``) was read."""

    def hello(self, verb: str, code: int) -> None:
        """EHLO, HELO or LHLO (``verb``) was answered with ``code``."""

    def secured(self, tls_version: str | None) -> None:
        """The TLS handshake finished (STARTTLS, or implicit TLS before the greeting);
        ``tls_version`` as :meth:`ssl.SSLSocket.version` says it (``"TLSv1.3"``)."""

    def authenticated(self, mechanism: str, code: int) -> None:
        """AUTH with ``mechanism`` ended with ``code`` (235 or 503: success)."""

    def failed(self, error: BaseException) -> None:
        """A connection-level step failed with ``error`` (what the caller sees)."""

    def closed(self) -> None:
        """The connection is closed; called once, last."""


class _Unwatched:
    """The :class:`ConnectionWatch` of a connection nobody observes: does nothing."""

    __slots__ = ()

    def greeted(self, code: int) -> None:
        pass

    def hello(self, verb: str, code: int) -> None:
        pass

    def secured(self, tls_version: str | None) -> None:
        pass

    def authenticated(self, mechanism: str, code: int) -> None:
        pass

    def failed(self, error: BaseException) -> None:
        pass

    def closed(self) -> None:
        pass


UNWATCHED: ConnectionWatch = _Unwatched()
"""What a connection opened without an observer reports to (a connection's few calls
cost less than a check at each)."""


class SendWatch(Protocol):
    """One message, from the moment it is taken to its result."""

    def active(self) -> AbstractContextManager[object]:
        """Entered around a single send, in the caller's task: what the observer makes of
        the send (a span) is the current one meanwhile, so a connection opened for it is
        seen as part of it."""
        ...

    def finished(
        self, result: SendResult | BaseException, connection: ConnectionWatch | None
    ) -> None:
        """What the caller got: the result or the exception; ``connection`` is the
        connection it went out on last, when known. Called once."""


class Observer(Protocol):
    """What an instrumentation implements; install it with :func:`install`."""

    def connection(self, peer: Peer) -> ConnectionWatch:
        """A connection to ``peer`` is about to be opened."""
        ...

    def send(self, peer: Peer, sender: str, recipients: Sequence[str]) -> SendWatch:
        """A message from ``sender`` to ``recipients`` is about to be sent to ``peer``."""
        ...


_observer: Observer | None = None


def current() -> Observer | None:
    """The installed observer, if any."""
    return _observer


def watch_connection(peer: Peer) -> ConnectionWatch:
    """The observer's watch for a connection to ``peer`` about to open, or :data:`UNWATCHED`."""
    observer = _observer
    return UNWATCHED if observer is None else observer.connection(peer)


def install(observer: Observer) -> None:
    """Make ``observer`` see every connection opened and every send started from now on."""
    global _observer
    _observer = observer


def uninstall() -> None:
    """Stop observing: new connections and sends are no longer reported."""
    global _observer
    _observer = None
