"""The sweeper: enqueues the release of holds past their expiry, re-sends wake-ups for
operations left pending and for webhook deliveries due (or events not yet fanned out), and
expires old idempotency keys.

A wake-up can be lost (Redis restarted, a worker killed, a publish that failed); the
operation itself is safe in PostgreSQL. Every `sweeper_interval` seconds the sweeper looks
for a pending operation older than `sweeper_min_age` seconds and, if there is one, sends a
drain task; if a webhook delivery is due or an endpoint's fan-out is behind, it rings the
webhook senders' doorbell (`shared.webhooks.wake`). Running more than one sweeper is
harmless: a drain with nothing to do does nothing, a ring while one is rung sends nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import redis

from shared import metrics
from shared.db import transaction
from shared.ledger import sweeps
from shared.queue import DRAIN_TASK, make_celery
from shared.settings import get_settings
from shared.webhooks import claim_repository as webhooks
from shared.webhooks import wake

log = logging.getLogger("paysys.sweeper")

EXPIRE_EVERY_SECONDS = 60
EXPIRE_BATCH = 10_000
# Holds past their expiry enqueued per sweep; more wait for the next sweep.
EXPIRY_BATCH = 1_000


def run(stop: threading.Event | None = None) -> None:
    settings = get_settings()
    stop = stop or threading.Event()

    def _stop(signum: int, _: FrameType | None) -> None:
        log.info("sweeper stopping (signal %d)", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    celery = make_celery(settings)
    client = redis.Redis.from_url(
        settings.require_redis_url(), socket_timeout=2, socket_connect_timeout=1
    )
    next_expiry = 0.0
    log.info(
        "sweeper started: every %.1fs, re-dispatching operations pending for over %.1fs",
        settings.sweeper_interval,
        settings.sweeper_min_age,
    )
    while not stop.is_set():
        try:
            with transaction() as cur:
                due = sweeps.enqueue_expiries(cur, EXPIRY_BATCH)
            if due:
                celery.send_task(DRAIN_TASK)
                log.info("enqueued the expiry of %d holds", due)
            with transaction() as cur:
                stale = sweeps.pending_older_than(cur, settings.sweeper_min_age)
            if stale:
                celery.send_task(DRAIN_TASK)
                metrics.sweeper_redispatches.inc()
                log.info("re-dispatched a drain for operations left pending")
            with transaction() as cur:
                deliveries = webhooks.work_waiting(cur)
            if deliveries:
                wake.ring(client, settings, celery)
            if time.monotonic() >= next_expiry:
                with transaction() as cur:
                    expired = sweeps.delete_expired_idempotency_keys(
                        cur, settings.idempotency_retention_hours, EXPIRE_BATCH
                    )
                if expired:
                    log.info("expired %d idempotency keys", expired)
                next_expiry = time.monotonic() + (
                    0 if expired == EXPIRE_BATCH else EXPIRE_EVERY_SECONDS
                )
        except Exception as exc:  # a dependency is down: keep sweeping once it is back
            log.warning("sweep failed, retrying: %r", exc)
        stop.wait(settings.sweeper_interval)
