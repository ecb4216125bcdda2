"""The completion hub: long polls woken by what the workers announce on Redis."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis

from api.keys import KeyCache
from shared.doorbell import completions_channel, revocations_channel
from shared.settings import Settings

log = logging.getLogger("paysys.api")
T = TypeVar("T")


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
        self._announcing: set[asyncio.Future[None]] = set()
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

    def announce(self, keys: list[str]) -> None:
        """Publish keys to every API process's hub (this one's too), in the background and
        best effort: a lost announcement costs its waiters latency, never an answer."""
        task = asyncio.ensure_future(self._announce(keys))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _announce(self, keys: list[str]) -> None:
        try:
            await self._redis.publish(self._channel, orjson.dumps(keys))
        except Exception as exc:
            log.debug("could not announce %s: %r", keys, exc)

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
