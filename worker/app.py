"""The worker's Celery app: the shared broker settings, plus the tasks and process hooks.

Run it with `paysys worker` (or `celery -A worker.app worker -Q <queue>`); `paysys
webhooks` runs it on the webhooks' queue.
"""

from __future__ import annotations

import gc
from typing import Any

from celery.signals import worker_process_init

from shared import db
from shared.queue import make_celery

# Imported for their tasks: shared tasks, registered on every app as it is finalized. The
# ledger's worker consumes the drain's queue, `paysys webhooks` the webhooks' queue only.
from worker import tasks, webhooks  # noqa: F401

app = make_celery()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A pool child must not share its parent's database or Redis sockets.
    db.reset_engine()
    tasks.reset_redis()
    gc.freeze()  # the imported code lives as long as the child: keep it out of collections
