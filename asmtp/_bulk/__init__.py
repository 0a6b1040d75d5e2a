"""Sending many messages: the connection pool and its bookkeeping.

``_pool`` awaits; ``_gate`` (who holds a connection), ``_idle`` (which connection to reuse,
the rate limit) and ``_retry`` (when to try again) are plain code it consults.
"""

from __future__ import annotations

from ._pool import SMTPPool
from ._retry import RetryPolicy, is_retryable, retry_delay

__all__ = ["RetryPolicy", "SMTPPool", "is_retryable", "retry_delay"]
