"""What the API process holds open: the database pool, Redis, the Celery sender, the
doorbell and the completion hub. Created in the app's lifespan, reached by routes through
`request.app.state.resources`."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from celery import Celery

from api.ratelimit import RateLimiter
from shared.doorbell import (
    DOORBELL_TTL,
    completions_channel,
    doorbell_key,
    revocations_channel,
)
from shared.intake.service import WalletLanes
from shared.queue import DRAIN_TASK
from shared.settings import Settings

log = logging.getLogger("paysys.api")

Pool = asyncpg.Pool


async def create_pool(settings: Settings) -> Pool:
    # min_size=0: the API starts (and answers 503) while PostgreSQL is down.
    return await asyncpg.create_pool(
        settings.asyncpg_dsn,
        min_size=0,
        max_size=settings.db_pool_size,
        timeout=settings.db_connect_timeout,
        command_timeout=settings.db_statement_timeout,
        max_inactive_connection_lifetime=60,
        # Connections go back to the pool as they came out: no statement here changes
        # session state (SET LOCAL only, inside transactions), so skip asyncpg's reset
        # query, a round trip on every release.
        reset=_keep_as_is,
        server_settings={
            "application_name": "paysys-api",
            "lock_timeout": f"{int(settings.idempotency_lock_timeout * 1000)}ms",
            "statement_timeout": f"{int(settings.db_statement_timeout * 1000)}ms",
            "idle_in_transaction_session_timeout": "30s",
        },
    )


async def _keep_as_is(_: asyncpg.Connection) -> None:
    return None


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
        task = asyncio.create_task(self._ring(random.randrange(self._settings.drain_slots)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _ring(self, slot: int) -> None:
        key = doorbell_key(self._settings, slot)
        try:
            if await self._redis.set(key, "1", nx=True, ex=DOORBELL_TTL):
                try:
                    await asyncio.to_thread(
                        self._celery.send_task, DRAIN_TASK, kwargs={"slot": slot}
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


class KeyCache:
    """API keys recently seen valid, so that most requests skip the lookup.

    A revoked key is dropped at once when `paysys api-keys revoke` says so on Redis; if that
    message is lost (Redis down), an entry still lives `TTL` seconds at most.
    """

    TTL = 5.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, Any]] = {}
        # Keys dropped as revoked: a lookup that started before the revocation committed
        # must not put the key back.
        self._revoked: dict[bytes, float] = {}

    def get(self, digest: bytes) -> Any | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: bytes, row: Any) -> None:
        now = time.monotonic()
        if self._revoked.get(digest, 0.0) > now:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (now + self.TTL, row)

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        now = time.monotonic()
        self._revoked = {d: t for d, t in self._revoked.items() if t > now}
        self._revoked[digest] = now + 60 * self.TTL


class CompletionHub:
    """Wakes `?wait=` long polls when a worker publishes that an operation completed.

    A notification can be lost (Redis restarted, the subscription reconnecting); waiters
    re-read the database at least once a second, so a lost one costs latency only.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings, keys: KeyCache):
        self._redis = redis
        self._channel = completions_channel(settings)
        self._revocations = revocations_channel(settings)
        self._keys = keys
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.closing = False
        self._loop = asyncio.get_running_loop()

    def close_on_exit_signals(self) -> None:
        """On SIGTERM or SIGINT, answer every long poll at once with what it has.

        Uvicorn then stops accepting and waits for in-flight requests; a `?wait=` poll
        may have up to 30 s left, longer than a deployment should wait. The handler is
        chained in front of uvicorn's own (installed before the app starts).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
                self.closing = True
                self._loop.call_soon_threadsafe(self._wake_all)
                if callable(previous):
                    previous(sig, frame)

            signal.signal(signum, handler)

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        if self.closing:
            event.set()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[key]

    def _notify(self, keys: list[str]) -> None:
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()

    async def run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel, self._revocations)
                    while True:
                        message = await pubsub.get_message(timeout=30)
                        if message is None:
                            continue
                        if message["channel"] == self._revocations.encode():
                            self._keys.drop(bytes.fromhex(message["data"].decode()))
                        elif self._waiters:
                            self._notify(orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("completion subscription lost, reconnecting: %r", exc)
                await asyncio.sleep(1)


@dataclass
class Resources:
    settings: Settings
    pool: Pool
    redis: aioredis.Redis
    doorbell: Doorbell
    hub: CompletionHub
    limiter: RateLimiter | None
    keys: KeyCache
    lanes: WalletLanes
    background: list[asyncio.Task[None]] = field(default_factory=list)
