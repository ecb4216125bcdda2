"""Waking a worker after an operation is committed (see shared/doorbell.py)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import redis.asyncio as aioredis
from celery import Celery

from shared.doorbell import DOORBELL_TTL, doorbell_key
from shared.queue import DRAIN_TASK
from shared.settings import Settings

log = logging.getLogger("paysys.api")


class Doorbell:
    """Wakes a worker after an operation is committed (see shared/doorbell.py)."""

    def __init__(self, redis: aioredis.Redis, celery: Celery, settings: Settings):
        self._redis = redis
        self._celery = celery
        self._settings = settings
        self._pending: set[asyncio.Task[None]] = set()
        self._last_warning = 0.0

    def ring(self) -> None:
        """Ring in the background: the response does not wait for Redis."""
        slot = random.randrange(self._settings.drain_slots)
        self.ring_key(doorbell_key(self._settings, slot), DRAIN_TASK, kwargs={"slot": slot})

    def ring_key(
        self,
        key: str,
        task: str,
        *,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """Ring the doorbell `key` in the background, and send `task` (to `queue`, else the
        default queue) only if it was silent. Best effort: a failure is logged, and the
        sweeper wakes the workers anyway."""
        ring = asyncio.create_task(self._ring(key, task, kwargs or {}, queue))
        self._pending.add(ring)
        ring.add_done_callback(self._pending.discard)

    async def _ring(self, key: str, task: str, kwargs: dict[str, Any], queue: str | None) -> None:
        try:
            if await self._redis.set(key, "1", nx=True, ex=DOORBELL_TTL):
                try:
                    # queue=None: the default queue (Celery's router reads it as absent).
                    await asyncio.to_thread(
                        self._celery.send_task, task, kwargs=kwargs, queue=queue
                    )
                except Exception:
                    await self._redis.delete(key)
                    raise
        except Exception as exc:  # the sweeper re-sends it; say so, but not 1000 times a second
            now = time.monotonic()
            if now - self._last_warning > 5:
                self._last_warning = now
                log.warning("could not wake a worker (the sweeper will): %r", exc)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=2)
