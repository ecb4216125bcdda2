"""Waking the webhook senders (`paysys webhooks`), coalesced.

Whoever may have given the senders work (a transaction that wrote events has committed;
the sweeper saw a delivery due) rings one Redis key: `SET <webhooks doorbell> 1 NX EX 10`,
and only if that set it, sends the task `WEBHOOKS_TASK`. A sender deletes the key before
it looks for work, and again before its last look: anything committed before that look is
seen, anything after it rings again. Redis only wakes: a lost ring (Redis restarted, a
send that failed) delays deliveries until the sweeper's next look, never loses one.

From the ledger's worker, one Redis round trip: `queue_ring` adds the SET to the pipeline
that publishes completions, `after_ring` sends the task if it answered yes; and none at
all for tenants without a live endpoint (`subscribed`, from a list of such tenants read at
most every `SUBSCRIBERS_MAX_AGE` seconds: an endpoint registered since is woken for by the
sweeper meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

import redis
from celery import Celery
from redis.client import Pipeline

from shared.db import transaction
from shared.doorbell import DOORBELL_TTL, webhooks_doorbell_key
from shared.queue import WEBHOOKS_TASK, make_celery
from shared.settings import Settings, get_settings

log = logging.getLogger("paysys.webhooks")

SUBSCRIBERS_MAX_AGE = 2.0

_sender: Celery | None = None
_sender_lock = threading.Lock()
_subscribers: frozenset[uuid.UUID] = frozenset()
_subscribers_read_at = -SUBSCRIBERS_MAX_AGE

LIVE_TENANTS = """
SELECT DISTINCT tenant_id FROM webhook_endpoint WHERE deleted_at IS NULL AND disabled_at IS NULL
"""


def subscribed(tenants: Iterable[uuid.UUID]) -> bool:
    """Whether any of `tenants` may have a live endpoint (True when that is unknown)."""
    global _subscribers, _subscribers_read_at
    tenants = set(tenants)
    if not tenants:
        return False
    if not tenants.isdisjoint(_subscribers):
        return True
    if time.monotonic() - _subscribers_read_at < SUBSCRIBERS_MAX_AGE:
        return False
    try:
        with transaction() as cur:
            cur.execute(LIVE_TENANTS)
            _subscribers = frozenset(row[0] for row in cur.fetchall())
    except Exception as exc:
        log.debug("could not read which tenants have webhook endpoints: %r", exc)
        return True
    _subscribers_read_at = time.monotonic()
    return not tenants.isdisjoint(_subscribers)


def _celery(settings: Settings) -> Celery:
    """A Celery app to send with, made on first use (in a worker's pool child: after the
    fork, so no broker connection is shared with the parent)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = make_celery(settings)
        return _sender


def queue_ring(pipe: Pipeline, settings: Settings | None = None) -> None:
    """Add the doorbell's SET NX to a pipeline; pass its answer to `after_ring`."""
    settings = settings or get_settings()
    pipe.set(webhooks_doorbell_key(settings), "1", nx=True, ex=DOORBELL_TTL)


def after_ring(
    rung: object,
    client: redis.Redis,
    settings: Settings | None = None,
    sender: Celery | None = None,
) -> None:
    """Send the task if the SET set the key (the doorbell was silent). Best effort."""
    if not rung:
        return
    settings = settings or get_settings()
    try:
        (sender or _celery(settings)).send_task(WEBHOOKS_TASK)
    except Exception as exc:  # leave no doorbell rung without a task behind it
        log.warning("could not wake the webhook senders (the sweeper will): %r", exc)
        try:
            client.delete(webhooks_doorbell_key(settings))
        except redis.RedisError:
            pass


def ring(
    client: redis.Redis, settings: Settings | None = None, sender: Celery | None = None
) -> None:
    """Ring the webhook senders' doorbell: a task is sent unless it is already rung."""
    settings = settings or get_settings()
    try:
        rung = client.set(webhooks_doorbell_key(settings), "1", nx=True, ex=DOORBELL_TTL)
    except redis.RedisError as exc:
        log.debug("could not ring the webhook senders: %r", exc)
        return
    after_ring(rung, client, settings, sender)


def clear(client: redis.Redis, settings: Settings) -> None:
    """A sender is about to look for work: rings from now on must send a task."""
    try:
        client.delete(webhooks_doorbell_key(settings))
    except redis.RedisError as exc:
        log.debug("could not clear the webhook doorbell (it expires): %r", exc)


def hand_over(client: redis.Redis, sender: Celery, settings: Settings) -> None:
    """A sender out of time with work left: a fresh task takes over, the doorbell stays
    rung meanwhile (no ring needs to send another)."""
    key = webhooks_doorbell_key(settings)
    try:
        client.set(key, "1", ex=DOORBELL_TTL)
        sender.send_task(WEBHOOKS_TASK)
    except Exception as exc:
        log.warning("could not hand over the webhook senders' loop (the sweeper will): %r", exc)
        try:
            client.delete(key)
        except redis.RedisError:
            pass
