"""Sending many messages: the connection pool and its bookkeeping.

``_pool`` sends and ``_connections`` opens, reuses and closes connections; ``_gate`` (who
holds a connection), ``_idle`` (which connection to reuse, the rate limit) and ``_backoff``
(when to try again, and when to connect to a failing destination) are plain code they
consult. ``_stream`` turns many messages into a stream of outcomes; ``_loop`` says which
event loop a pool belongs to.
"""

from __future__ import annotations

from ._backoff import RetryPolicy, is_retryable, retry_delay
from ._pool import SMTPPool
from ._stream import SendStream

__all__ = ["RetryPolicy", "SMTPPool", "SendStream", "is_retryable", "retry_delay"]
