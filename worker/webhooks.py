"""The webhook senders' Celery task, consumed only by `paysys webhooks` (its own queue,
`shared.queue.webhooks_queue`): the ledger's workers never run it, so a slow receiver
never holds a process that applies money. Thin: the loop is `shared.webhooks.runner`."""

from __future__ import annotations

import threading
from typing import Any

import redis
from celery import Task, shared_task
from celery.signals import worker_shutting_down

from shared.queue import WEBHOOKS_TASK
from shared.settings import get_settings
from shared.webhooks import wake
from shared.webhooks.runner import Runner

_runner: Runner | None = None
_lock = threading.Lock()


def runner() -> Runner:
    """The process's loop, made on first use (in the process that sends)."""
    global _runner
    with _lock:
        if _runner is None:
            settings = get_settings()
            client = redis.Redis.from_url(
                settings.require_redis_url(), socket_timeout=2, socket_connect_timeout=1
            )
            _runner = Runner(settings, client)
        return _runner


@worker_shutting_down.connect
def _stop(**_: Any) -> None:
    # Warm shutdown: the loop claims nothing more and ends once its attempts are recorded.
    if _runner is not None:
        _runner.stop()


@shared_task(name=WEBHOOKS_TASK, bind=True, ignore_result=True)
def send_webhooks(self: Task[..., None]) -> None:
    """Fan out and send until nothing is left (see shared/webhooks/runner.py)."""
    loop = runner()
    if not loop.enter():
        return  # the loop running in this process was poked: it looks again at once
    if loop.run():
        wake.hand_over(loop.redis, self.app, loop.settings)
