"""Sending many messages: the connection pool and its bookkeeping.

``_pool`` awaits; ``_gate`` (who holds a connection), ``_idle`` (which connection to reuse,
the rate limit) and ``_backoff`` (when to try again, and when to connect to a failing
destination) are plain code it consults.
"""

from __future__ import annotations

from ._backoff import RetryPolicy, is_retryable, retry_delay
from ._pool import SMTPPool

__all__ = ["RetryPolicy", "SMTPPool", "is_retryable", "retry_delay"]
