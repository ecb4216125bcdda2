"""The senders' loop: fan out, claim, send on threads, record; until nothing is left.

The rules it keeps:

* Off the apply path. It runs in `paysys webhooks` only; the ledger's workers never wait
  on it (they ring a Redis key after their commit, and that is all).
* One loop per process. A task that arrives while the loop runs pokes it (it looks at the
  feed and claims at once) and returns; the loop ends only under the lock that pokes
  take, after checking it was not poked since its last look, so no wake-up falls between.
* Concurrent sends. Attempts run on `webhook_concurrency` threads; the loop claims only
  as many deliveries as threads are free, and at most a quarter of them for an endpoint
  that is failing: a receiver that hangs holds a few threads until the timeout, and
  every other endpoint's deliveries go on.
* It ends when nothing is in flight, due soon, or left to fan out, having cleared the
  doorbell and looked once more; or when its time is up (the task hands over to a new
  one); or when the worker stops (attempts in flight finish and are recorded first).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import redis

from shared.db import transaction
from shared.settings import Settings
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


class Runner:
    """The process's loop (see the module's docstring)."""

    def __init__(self, settings: Settings, redis_client: redis.Redis):
        self.settings = settings
        self.redis = redis_client
        self.concurrency = settings.webhook_concurrency
        self._lock = threading.Lock()
        self._running = False
        self._poked = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        self._client: httpx.Client = sender.make_client(settings)
        self._failing: dict[object, bool] = {}

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
            now = time.monotonic()
            ending = self._stopping.is_set() or now >= deadline
            claimed = 0
            if not ending:
                try:
                    if self._take_poke() or more or now >= next_fanout:
                        result = fanout.fan_out_round()
                        more, waiting = result.more, result.waiting
                        next_fanout = now + (POLL if waiting else FANOUT_EVERY)
                    claimed = self._claim(inflight)
                except Exception as exc:
                    log.warning("webhook round failed, retrying: %r", exc)
                    more = waiting = False
                    self._wake.wait(ERROR_PAUSE)
                    self._wake.clear()
                    continue
            if not any(f.done() for f in inflight):
                if not ending and (more or (claimed and len(inflight) < self.concurrency)):
                    pass  # look again at once: there is more to fan out, or to claim
                elif inflight:
                    self._wait(TICK)
                elif waiting and not ending:
                    self._wait(POLL)
            self._record(inflight)
            if ending:
                if inflight:
                    continue
                return not self._stopping.is_set()
            if inflight or more or claimed or waiting:
                last_look = False
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
        self._wake.wait(seconds)
        self._wake.clear()

    def _claim(self, inflight: dict[Future[Outcome], Claimed]) -> int:
        free = self.concurrency - len(inflight)
        if free <= 0:
            return 0
        busy = Counter(c.endpoint_id for c in inflight.values())
        cap, failing_cap = self.concurrency, delivery.failing_cap(self.settings)
        full = [e for e, n in busy.items() if n >= (failing_cap if self._failing.get(e) else cap)]
        claimed = delivery.claim(self.settings, free, dict(busy), full)
        for item in claimed:
            self._failing[item.endpoint_id] = item.failing
            future = self._pool.submit(self._attempt, item)
            inflight[future] = item
            future.add_done_callback(lambda _: self._wake.set())
        return len(claimed)

    def _attempt(self, claimed: Claimed) -> Outcome:
        try:
            return sender.attempt(claimed, self.settings, self._client)
        except Exception as exc:  # a bug or a bad setting (a secret key): say so, retry
            log.exception("webhook attempt failed inside paysys")
            return Outcome(None, f"internal error: {type(exc).__name__}")

    def _record(self, inflight: dict[Future[Outcome], Claimed]) -> None:
        done = [f for f in inflight if f.done()]
        if not done:
            return
        outcomes = [(inflight.pop(f), f.result()) for f in done]
        for claimed, outcome in outcomes:
            self._failing[claimed.endpoint_id] = not outcome.delivered
        try:
            delivery.record(outcomes, self.settings)
        except Exception as exc:  # their leases end, and they are attempted again
            log.warning("could not record %d webhook attempts: %r", len(outcomes), exc)

    def _next_due_in(self) -> float | None:
        try:
            with transaction() as cur:
                return repo.next_due_in(cur)
        except Exception as exc:
            log.warning("could not read the next webhook attempt's time: %r", exc)
            return None
