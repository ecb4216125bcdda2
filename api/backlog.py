"""Values the API keeps fresh in the background or computes at most once a second, so that
no request pays for them: the backlog's age (admission of new work) and the database's
gauges for /metrics."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.asyncdb import Pool
from shared.operations.repository import oldest_pending_seconds

log = logging.getLogger("paysys.api")


class BacklogGate:
    """Admission of new operations: refused while the oldest pending operation (of the
    whole installation) is older than `PAYSYS_MAX_BACKLOG_SECONDS`.

    The age is read from the database once a second in the background, never per request;
    between reads it is extrapolated (an operation still pending grows older), for at
    most a couple of seconds so that a failing read does not close the gate for good.
    """

    REFRESH_SECONDS = 1.0
    MAX_EXTRAPOLATION = 2.0
    MAX_RETRY_AFTER = 30

    def __init__(self, pool: Pool, bound_seconds: float):
        self._pool = pool
        self.bound = bound_seconds
        self._age = 0.0
        self._read_at = time.monotonic()

    def age(self) -> float:
        if self._age <= 0:
            return 0.0
        since = min(time.monotonic() - self._read_at, self.MAX_EXTRAPOLATION)
        return self._age + since

    def retry_after(self) -> int | None:
        """None while new operations are admitted; else seconds to wait (Retry-After)."""
        if not self.bound:
            return None
        over = self.age() - self.bound
        if over <= 0:
            return None
        return max(1, min(self.MAX_RETRY_AFTER, math.ceil(over)))

    async def run(self) -> None:
        if not self.bound:
            return
        while True:
            try:
                async with self._pool.acquire() as conn:
                    age = await oldest_pending_seconds(conn)
                self._age, self._read_at = age, time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("could not read the backlog: %r", exc)
            await asyncio.sleep(self.REFRESH_SECONDS)


class Every:
    """A value computed at most once per `seconds`, whoever asks and however often (the
    database-backed gauges of /metrics, whatever the scrape rate)."""

    def __init__(self, seconds: float, compute: Callable[[], Awaitable[Any]]):
        self._seconds = seconds
        self._compute = compute
        self._value: Any = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        async with self._lock:
            if time.monotonic() - self._at >= self._seconds:
                self._value = await self._compute()
                self._at = time.monotonic()
            return self._value
