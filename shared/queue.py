"""The Celery app: broker settings shared by the worker that runs tasks and by the API and
sweeper that send them. Tasks themselves live in `worker.tasks`.

Redis carries wake-ups only; PostgreSQL is the record. A lost message costs latency, never
money: the sweeper re-sends a wake-up for any operation left pending. The settings below
are chosen for recovery, each for a reason:

* `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged after its
  task ran, and returned to the queue when the pool child running it dies (kill -9), so a
  crash re-delivers the wake-up rather than dropping it.
* `visibility_timeout` 60 s: a message held by a worker that vanished entirely comes back
  after a minute rather than Celery's default hour. A drain is bounded by
  `drain_max_seconds`, far below it, and redelivering a drain is harmless anyway.
* `worker_prefetch_multiplier` 1: a child holds no message it is not running, so a wake-up
  never waits behind a long drain in another child's buffer.
* broker connection retries forever, on start-up too: a worker started before Redis, or
  cut off by a Redis restart, reconnects by itself.
* publishing retries briefly and then gives up: the API must answer in milliseconds even
  when Redis is down, and the operation is already safe in PostgreSQL.
* no result backend: nobody reads task results; status lives in PostgreSQL.
"""

from __future__ import annotations

from celery import Celery

from shared.settings import Settings, get_settings

DRAIN_TASK = "paysys.drain"
# Webhook deliveries: tasks of their own queue, consumed by `paysys webhooks` (never by the
# ledger's workers, so that a slow receiver never holds a process that applies money).
WEBHOOKS_TASK = "paysys.webhooks"


def webhooks_queue(settings: Settings) -> str:
    return f"{settings.celery_queue}.webhooks"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("paysys", broker=settings.require_redis_url(), set_as_current=False)
    app.conf.update(
        task_default_queue=settings.celery_queue,
        # Whoever sends it, the webhooks task goes to its own queue.
        task_routes={WEBHOOKS_TASK: {"queue": webhooks_queue(settings)}},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        result_backend=None,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": 60,
            "global_keyprefix": f"{settings.redis_prefix}:celery:",
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "health_check_interval": 10,
        },
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app
