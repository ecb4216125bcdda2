"""What the API process holds open: the database pool, Redis, the Celery sender, the
doorbell and the completion hub. Created in the app's lifespan, reached by routes through
`request.app.state.resources`."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar, cast

import asyncpg
import limits
import limits.storage
import limits.strategies
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
from shared.intake.repository import oldest_pending_seconds
from shared.intake.service import WalletLanes
from shared.queue import DRAIN_TASK
from shared.settings import Settings

log = logging.getLogger("paysys.api")
T = TypeVar("T")

Pool = asyncpg.Pool


class BoundedPool(asyncpg.Pool):
    """A pool whose `acquire()` waits at most `acquire_timeout` seconds for a connection.

    When every connection is busy (a table locked by a migration, a flood of slow reads),
    a request is answered 503 with Retry-After after that long (asyncpg raises
    TimeoutError, which the API renders as `service_unavailable`), never left to hang.
    """

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(settings: Settings) -> Pool:
    # min_size=0: the API starts (and answers 503) while PostgreSQL is down.
    pool = BoundedPool(
        settings.asyncpg_dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        loop=None,
        max_queries=50_000,
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
    pool.acquire_timeout = settings.db_pool_timeout
    await pool
    return pool


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
    """What this process knows of API keys, so that most requests skip the lookup.

    * A key found valid is trusted without a lookup for `TTL` seconds. A revoked key is
      dropped at once when `paysys api-keys revoke` says so on Redis; if that message is
      lost (Redis down), an entry still lives `TTL` seconds at most.
    * A key found unknown (or revoked) is refused without a lookup for `REFUSED_TTL`
      seconds: a client repeating a bad key costs no database work.
    * A key found valid within `KNOWN_TTL` seconds is still looked up for a client address
      over its failure limit (see `AuthFailures`), so that its owner is not refused along
      with whoever floods that address; an unknown key from there is not.
    """

    TTL = 5.0
    REFUSED_TTL = 60.0
    KNOWN_TTL = 3600.0
    MAX_ENTRIES = 10_000
    MAX_REFUSED = 100_000

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, Any]] = {}
        self._known: dict[bytes, float] = {}
        self._refused: dict[bytes, float] = {}
        # Keys dropped as revoked: a lookup that started before the revocation committed
        # must not put the key back.
        self._revoked: dict[bytes, float] = {}
        # One lookup per key at a time: concurrent requests with the same key share it.
        self._lookups: dict[bytes, asyncio.Future[Any]] = {}

    def get(self, digest: bytes) -> Any | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def refused(self, digest: bytes) -> bool:
        until = self._refused.get(digest)
        return until is not None and until > time.monotonic()

    def known(self, digest: bytes) -> bool:
        until = self._known.get(digest)
        return until is not None and until > time.monotonic()

    def put(self, digest: bytes, row: Any) -> None:
        now = time.monotonic()
        if self._revoked.get(digest, 0.0) > now:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        if len(self._known) >= self.MAX_ENTRIES:
            self._known.clear()
        self._entries[digest] = (now + self.TTL, row)
        self._known[digest] = now + self.KNOWN_TTL
        self._refused.pop(digest, None)

    def put_refused(self, digest: bytes) -> None:
        if len(self._refused) >= self.MAX_REFUSED:
            # The oldest first (insertion order); a flood of distinct keys is also held
            # back by the per-address failure limit.
            for stale in list(self._refused)[: self.MAX_REFUSED // 10]:
                del self._refused[stale]
        self._refused[digest] = time.monotonic() + self.REFUSED_TTL

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)
        self._known.pop(digest, None)
        now = time.monotonic()
        self._revoked = {d: t for d, t in self._revoked.items() if t > now}
        self._revoked[digest] = now + 60 * self.TTL
        self.put_refused(digest)

    async def lookup(self, digest: bytes, fetch: Callable[[], Awaitable[Any]]) -> Any | None:
        """The key's row from `fetch` (None if unknown), remembered either way."""
        pending = self._lookups.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        try:
            row = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting for it
            raise
        finally:
            del self._lookups[digest]
        if row is None:
            self.put_refused(digest)
        else:
            self.put(digest, row)
        future.set_result(row)
        return row


class AuthFailures:
    """Failed authentications per client address (`PAYSYS_AUTH_FAILURE_LIMIT`), counted in
    this process: past the limit, requests from that address without a valid key are
    refused with 429 before any lookup. Counted in memory rather than in Redis: the point
    is that a flood of bad keys costs nothing, not even a round trip."""

    def __init__(self, spec: str):
        self._limits = limits.parse_many(spec) if spec else []
        self._limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())

    def over(self, address: str) -> int | None:
        """None if `address` may still fail; else the seconds until it may again."""
        for item in self._limits:
            if not self._limiter.test(item, address):
                reset = self._limiter.get_window_stats(item, address).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def failed(self, address: str) -> None:
        for item in self._limits:
            self._limiter.hit(item, address)


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
        self._max_per_tenant = settings.long_poll_max_per_tenant
        self._per_tenant: dict[uuid.UUID, int] = {}
        # Reads shared by the waiters of a resource: per key, the announcements seen so
        # far, and per tenant the latest read (the announcements it saw, when it started,
        # its result to come).
        self._generations: dict[str, int] = {}
        self._reads: dict[str, dict[tuple[uuid.UUID, str], tuple[int, float, asyncio.Task[Any]]]]
        self._reads = {}
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
    def watch(self, key: str, tenant: uuid.UUID) -> Iterator[asyncio.Event | None]:
        """An event set when `key` is announced; None if the tenant already has its
        share of waiting long polls (the caller then answers at once)."""
        if self._per_tenant.get(tenant, 0) >= self._max_per_tenant:
            yield None
            return
        self._per_tenant[tenant] = self._per_tenant.get(tenant, 0) + 1
        event = asyncio.Event()
        if self.closing:
            event.set()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            left = self._per_tenant[tenant] - 1
            if left:
                self._per_tenant[tenant] = left
            else:
                del self._per_tenant[tenant]
            events = self._waiters.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[key]
                    self._generations.pop(key, None)
                    self._reads.pop(key, None)

    async def read(
        self,
        tenant: uuid.UUID,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        max_age: float = 0.0,
        variant: str = "",
    ) -> T:
        """`fetch()`, shared by the waiters of `key` (of one tenant): a read under way, or
        one finished less than `max_age` seconds ago, serves everyone who asks, unless an
        announcement came after it started. So one announcement costs one read, not one
        per waiter. `variant` names another read of the same resource. Only for callers
        inside `watch(key)`."""
        generation = self._generations.get(key, 0)
        reads = self._reads.setdefault(key, {})
        latest = reads.get((tenant, variant))
        if latest is not None:
            seen, started, task = latest
            if seen == generation and (not task.done() or time.monotonic() - started < max_age):
                return cast(T, await asyncio.shield(task))
        task = asyncio.ensure_future(fetch())
        task.add_done_callback(_retrieve)
        reads[(tenant, variant)] = (generation, time.monotonic(), task)
        return await asyncio.shield(task)

    def _notify(self, keys: list[str]) -> None:
        for key in keys:
            events = self._waiters.get(key)
            if events:
                self._generations[key] = self._generations.get(key, 0) + 1
                for event in events:
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


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A shared read whose waiters all left: its failure is nobody's to report."""
    if not task.cancelled():
        task.exception()


@dataclass
class Resources:
    settings: Settings
    pool: Pool
    redis: aioredis.Redis
    doorbell: Doorbell
    hub: CompletionHub
    limiter: RateLimiter | None
    keys: KeyCache
    auth_failures: AuthFailures
    lanes: WalletLanes
    backlog: BacklogGate
    gauges: Every
    background: list[asyncio.Task[None]] = field(default_factory=list)
