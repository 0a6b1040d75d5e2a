"""A rate limit shared by every worker of a campaign, kept in Redis.

Each send reserves the next slot of the generic cell rate algorithm (``_scripts.GCRA``)
and sleeps until it: sends are spaced ``1 / rate`` seconds apart however many workers
ask, with no burst, and the clock is Redis's alone.
"""

from __future__ import annotations

import anyio
import redis.asyncio

from . import _scripts

__all__ = ["SharedRateLimit"]


class SharedRateLimit:
    """At most ``rate`` sends per second, across every holder of the same ``key``.

    ``client`` is a ``redis.asyncio.Redis``. :class:`ValueError` unless ``rate`` > 0.
    """

    def __init__(self, client: redis.asyncio.Redis, key: str, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be more than 0 per second, not {rate!r}")
        self.key = key
        self.rate = rate
        self._interval = f"{1000.0 / rate:.3f}"
        self._reserve = client.register_script(_scripts.GCRA)

    async def reserve(self) -> float:
        """Take the next slot; the seconds until it comes (0 when it is now)."""
        found = await self._reserve(keys=[self.key], args=[self._interval])
        return max(0.0, float(found) / 1000)

    async def wait(self) -> None:
        """Take the next slot and sleep until it comes."""
        delay = await self.reserve()
        if delay > 0:
            await anyio.sleep(delay)
