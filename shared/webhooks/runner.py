"""The senders' loop: fan out, claim, send on threads, record; until nothing is left.

The rules it keeps:

* Off the apply path. It runs in `paysys webhooks` only; the ledger's workers never wait
  on it (they ring a Redis key after their commit, and that is all).
* One loop per process. A task that arrives while the loop runs pokes it (it looks at the
  feed and claims at once) and returns; the loop ends only under the lock that pokes
  take, after checking it was not poked since its last look, so no wake-up falls between.
* Concurrent sends. Attempts run on `webhook_concurrency` threads; the loop keeps at most
  two claimed deliveries per thread (one sending, one queued behind it, so that no thread
  waits for the loop), claimed round-robin over the endpoints, at most half the threads'
  worth for any one endpoint and a quarter for one that is failing: when an attempt
  fails, that endpoint's queued deliveries are given back unsent, so a receiver that
  hangs holds a few threads until the timeout, one that answers slowly holds half of
  them, and every other endpoint's deliveries go on.
* It ends when nothing is in flight, due soon, or left to fan out, having cleared the
  doorbell and looked once more; or when its time is up (the task hands over to a new
  one); or when the worker stops (attempts in flight finish and are recorded, queued ones
  are given back).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import redis

from shared import db
from shared.db import transaction
from shared.settings import Settings
from shared.webhooks import claim_repository as claims
from shared.webhooks import delivery, fanout, sender, wake
from shared.webhooks import repository as repo
from shared.webhooks.delivery import Claimed, Outcome

log = logging.getLogger("paysys.webhooks")

TICK = 0.25  # longest wait between looks while attempts are in flight
POLL = 0.05  # while fanned-out events wait for an older transaction to end
FANOUT_EVERY = 0.25  # the loop looks at the feed this often, rings or not
IDLE_WAIT = 5.0  # a retry due this soon is waited for, rather than left to the sweeper
ERROR_PAUSE = 1.0  # after a failed look (the database is away)
MAX_SECONDS = 30.0  # then the task hands over: no message outlives Redis's visibility
TRACE_EVERY = 60.0  # an internal error's traceback is logged at most this often per kind


class Runner:
    """The process's loop (see the module's docstring)."""

    def __init__(self, settings: Settings, redis_client: redis.Redis):
        self.settings = settings
        self.redis = redis_client
        self.concurrency = settings.webhook_concurrency
        self.capacity = delivery.capacity(settings)
        self._lock = threading.Lock()
        self._running = False
        self._poked = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        self._client: httpx.Client = sender.make_client(settings)
        self._traced: dict[str, float] = {}
        repo.commit_without_waiting(db.engine())

    def enter(self) -> bool:
        """True if the caller must run the loop; False if it runs already (it was poked)."""
        with self._lock:
            if self._running:
                self._poked = True
                self._wake.set()
                return False
            self._running = True
            self._poked = False
            return True

    def _leave(self) -> bool:
        """End the loop, unless it was poked since its last look."""
        with self._lock:
            if self._poked:
                self._poked = False
                return False
            self._running = False
            return True

    def _take_poke(self) -> bool:
        with self._lock:
            poked, self._poked = self._poked, False
            return poked

    def stop(self) -> None:
        """The worker is stopping: claim nothing more, finish what is in flight."""
        self._stopping.set()
        self._wake.set()

    def run(self, max_seconds: float = MAX_SECONDS) -> bool:
        """Run the loop (after `enter()` said so). True if it ran out of time: hand over."""
        try:
            return self._run(time.monotonic() + max_seconds)
        finally:
            with self._lock:
                self._running = False

    def _run(self, deadline: float) -> bool:
        inflight: dict[Future[Outcome], Claimed] = {}
        wake.clear(self.redis, self.settings)
        next_fanout = 0.0
        more = waiting = last_look = False
        while True:
            self._wake.clear()  # set again by any attempt that finishes or task that pokes
            now = time.monotonic()
            ending = self._stopping.is_set() or now >= deadline
            finished = [(inflight.pop(f), f.result()) for f in list(inflight) if f.done()]
            released = self._withdraw(inflight, finished)
            free = 0 if ending else self.capacity - len(inflight)
            claimed = 0
            try:
                if not ending and (self._take_poke() or more or now >= next_fanout):
                    result = fanout.fan_out_round()
                    more, waiting = result.more, result.waiting
                    next_fanout = now + (POLL if waiting else FANOUT_EVERY)
                if finished or released or free > 0:
                    claimed = self._settle(finished, released, free, inflight)
            except Exception as exc:  # the database is away: what was sent is sent again
                log.warning("webhook round failed, retrying: %r", exc)
                more = waiting = False
                if not ending:
                    self._wait(ERROR_PAUSE)
                    continue
            if ending:
                if not inflight:
                    return not self._stopping.is_set()
                self._wait(TICK)
                continue
            if inflight or more or claimed or waiting:
                last_look = False
                if not (more or (claimed and len(inflight) < self.capacity)):
                    self._wait(TICK if inflight else POLL)
                continue
            due_in = self._next_due_in()
            if due_in is not None and due_in <= IDLE_WAIT and now + due_in < deadline:
                self._wait(max(POLL, due_in))
                continue
            if not last_look:
                # Clear the doorbell, then look once more: whatever commits after this
                # rings again, whatever committed before is seen by the next look.
                wake.clear(self.redis, self.settings)
                last_look, next_fanout = True, 0.0
                continue
            if self._leave():
                return False
            last_look, next_fanout = False, 0.0  # poked meanwhile: look again

    def _wait(self, seconds: float) -> None:
        """Until an attempt finishes or a task pokes (since this round began), or
        `seconds` have passed."""
        self._wake.wait(seconds)

    def _withdraw(
        self, inflight: dict[Future[Outcome], Claimed], finished: list[tuple[Claimed, Outcome]]
    ) -> list[Claimed]:
        """Take back the claimed deliveries not yet started: those of an endpoint that has
        just failed (it is held to the failing cap from now on: a receiver that hangs must
        not hold the threads twice over), or all of them when the worker is stopping."""
        stopping = self._stopping.is_set()
        failed = {
            item.endpoint_id
            for item, outcome in finished
            if not outcome.delivered and not outcome.deferred
        }
        if not failed and not stopping:
            return []
        taken = []
        for future, item in list(inflight.items()):
            if (stopping or item.endpoint_id in failed) and future.cancel():
                del inflight[future]
                taken.append(item)
        return taken

    def _settle(
        self,
        finished: list[tuple[Claimed, Outcome]],
        released: list[Claimed],
        free: int,
        inflight: dict[Future[Outcome], Claimed],
    ) -> int:
        """Record what finished, give back what was taken back, claim up to `free`, and
        start sending what was claimed."""
        busy = Counter(c.endpoint_id for c in inflight.values())
        claimed = delivery.settle(finished, released, self.settings, free, dict(busy))
        for item in claimed:
            future = self._pool.submit(self._attempt, item)
            inflight[future] = item
            future.add_done_callback(lambda _: self._wake.set())
        return len(claimed)

    def _attempt(self, claimed: Claimed) -> Outcome:
        try:
            return sender.attempt(claimed, self.settings, self._client)
        except Exception as exc:  # a bug or a bad setting (a secret key): say so, retry later
            self._log_internal_error(claimed, exc)
            return Outcome(None, f"internal error: {exc!r}"[:200], deferred="error")

    def _log_internal_error(self, claimed: Claimed, exc: Exception) -> None:
        """The first of a kind of error in a minute, with its traceback: a secret that
        cannot be unsealed fails every delivery of its endpoint (the rest are summed up
        when they are recorded, see `delivery.settle`)."""
        kind = type(exc).__qualname__
        now = time.monotonic()
        with self._lock:
            if now - self._traced.get(kind, -TRACE_EVERY) < TRACE_EVERY:
                return
            self._traced[kind] = now
        log.error(
            "webhook delivery of event %s to endpoint %s failed inside paysys (retried "
            "later, not held against the endpoint)",
            claimed.event_id,
            claimed.endpoint_id,
            exc_info=exc,
            extra={"endpoint_id": str(claimed.endpoint_id), "tenant_id": str(claimed.tenant_id)},
        )

    def _next_due_in(self) -> float | None:
        try:
            with transaction() as cur:
                return claims.next_due_in(cur)
        except Exception as exc:
            log.warning("could not read the next webhook attempt's time: %r", exc)
            return None
