"""Celery tasks: thin, they take no money arguments and call the ledger service."""

from __future__ import annotations

import logging

import orjson
import redis
from celery import Celery, Task, shared_task

from shared.doorbell import DOORBELL_TTL, completions_channel, doorbell_key, events_key
from shared.ledger import service as ledger
from shared.queue import DRAIN_TASK
from shared.settings import Settings, get_settings
from shared.webhooks import wake as webhooks

log = logging.getLogger("paysys.worker")

_redis: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(
            get_settings().require_redis_url(), socket_timeout=2, socket_connect_timeout=1
        )
    return _redis


def reset_redis() -> None:
    global _redis
    _redis = None


def _publish_completions(result: ledger.DrainResult) -> None:
    """Tell long polls which operations (and batches) just became final, and wake the
    webhook senders if there are events for them. Best effort."""
    keys = [f"o:{operation.id}" for operation, _, _ in result.outcomes]
    keys += [f"b:{batch_id}" for batch_id in result.batch_ids]
    keys += [events_key(tenant) for tenant in result.event_tenants]
    settings = get_settings()
    ring = webhooks.subscribed(result.event_tenants)  # new events for a webhook endpoint
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.publish(completions_channel(settings), orjson.dumps(keys))
        if ring:
            webhooks.queue_ring(pipe, settings)
        answers = pipe.execute()
    except redis.RedisError as exc:
        log.debug("could not publish completions: %r", exc)
        return
    if ring:
        webhooks.after_ring(answers[-1], redis_client(), settings)


# A drain is bounded by drain_max_seconds and its statements by the session's
# statement_timeout; the time limit only stops a child that is stuck beyond both.
@shared_task(name=DRAIN_TASK, bind=True, ignore_result=True, time_limit=300)
def drain(self: Task[..., None], slot: int | None = None) -> None:
    """Apply pending operations until none is left to claim (see shared/doorbell.py).

    `slot` is the doorbell that sent this task; the sweeper's tasks have none.
    """
    settings = get_settings()
    while True:
        more = ledger.drain(
            max_ops=settings.drain_max_ops,
            max_seconds=settings.drain_max_seconds,
            on_commit=_publish_completions,
        )
        if slot is None:
            # A sweeper's task: out of time or not, the next sweep sends another if work
            # is still waiting. Handing over would start a chain per sweep.
            return
        if more:
            # Out of time with work left: hand over to a fresh task for the same doorbell,
            # which stays rung, rather than hold this pool child.
            _hand_over(self.app, settings, slot)
            return
        if not _clear_doorbell(settings, slot):
            return
        # Cleared: one more look, for what was committed while the doorbell was rung.
        result = ledger.drain_round(settings.drain_max_ops, _publish_completions)
        if result.claimed_wallets == 0:
            return


def _clear_doorbell(settings: Settings, slot: int) -> bool:
    try:
        redis_client().delete(doorbell_key(settings, slot))
        return True
    except redis.RedisError as exc:
        log.warning("could not clear a doorbell (it will expire): %r", exc)
        return False


def _hand_over(app: Celery, settings: Settings, slot: int) -> None:
    """`app`: the worker's own, the one this task runs in (it has the broker settings)."""
    key = doorbell_key(settings, slot)
    try:
        redis_client().set(key, "1", ex=DOORBELL_TTL)
        app.send_task(DRAIN_TASK, kwargs={"slot": slot})
    except Exception as exc:  # leave no doorbell rung without a task: clear it
        log.warning("could not hand over a drain (the sweeper will): %r", exc)
        try:
            redis_client().delete(key)
        except redis.RedisError:
            pass
