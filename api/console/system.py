"""The console's system page: is paysys keeping up? The backlog's age, what was accepted
and applied over the last minutes and how fast, which workers answer, and the tenant's
operations that failed with `internal_error`.

The rules:

* What is the whole installation's (backlog, throughput, latency, workers) is what
  `/metrics` already publishes to anyone; it is computed at most once every
  `SNAPSHOT_SECONDS` per API process, whoever asks (see `system_reads` for its cost).
* Workers are asked with a Celery ping, in a thread, bounded by `PING_TIMEOUT` seconds:
  a worker that does not answer in time is not listed, and the page never hangs on them.
* The operations listed are the tenant's only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from fastapi import APIRouter, Request
from starlette.responses import Response

from api.backlog import Every
from api.console import cursors, reads, system_reads
from api.console.web import ConsoleRoute, ViewerDep, page, resources
from api.resources import Resources
from shared.asyncdb import Record
from shared.queue import make_celery

log = logging.getLogger("paysys.console")

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

SNAPSHOT_SECONDS = 5.0
PING_TIMEOUT = 0.5
MINUTES = 5
PAGE = 20


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: datetime
    pending: int
    oldest_seconds: float | None
    minutes: list[Record]
    sampled: int
    workers: list[str] | None  # None: they could not be asked


class SystemView:
    """The installation-wide part of the page, shared by every request of the process."""

    def __init__(self, res: Resources):
        self._res = res
        self._celery: Celery | None = None
        self.snapshot = Every(SNAPSHOT_SECONDS, self._take)

    def _ping(self) -> list[str]:
        if self._celery is None:
            self._celery = make_celery(self._res.settings)
        replies = self._celery.control.ping(timeout=PING_TIMEOUT) or []
        return sorted(name for reply in replies for name in reply)

    async def _workers(self) -> list[str] | None:
        try:
            return await asyncio.to_thread(self._ping)
        except Exception as exc:  # Redis down: the page says so, and shows the rest
            log.warning("console: could not ping the workers: %r", exc)
            return None

    async def _take(self) -> Snapshot:
        workers = asyncio.ensure_future(self._workers())
        try:
            async with self._res.pool.acquire() as conn:
                backlog = await system_reads.backlog(conn)
                minutes = await system_reads.recent_minutes(conn, MINUTES)
        except BaseException:
            workers.cancel()
            raise
        return Snapshot(
            taken_at=datetime.now(UTC),
            pending=backlog["pending"],
            oldest_seconds=backlog["oldest_seconds"],
            minutes=minutes,
            sampled=minutes[0]["sampled"] if minutes else 0,
            workers=await workers,
        )


def system_view(request: Request) -> SystemView:
    state: Any = request.app.state
    view = getattr(state, "console_system", None)
    if view is None:
        view = state.console_system = SystemView(resources(request))
    return view


def percentile(seconds: list[float] | None, index: int) -> float | None:
    return None if seconds is None else seconds[index]


@router.get("/console/system")
async def system_page(request: Request, viewer: ViewerDep) -> Response:
    res = resources(request)
    before = cursors.parse_uuid(request.query_params.get("cursor"))
    snapshot: Snapshot = await system_view(request).snapshot.get()
    async with res.pool.acquire() as conn:
        errors = await system_reads.internal_errors(conn, viewer.tenant_id, before, PAGE + 1)
        shown = errors[:PAGE]
        names = await reads.wallet_names(conn, shown, viewer.tenant_id)
    minutes = [
        {
            "minute": row["minute"],
            "accepted": row["accepted"],
            "succeeded": row["succeeded"],
            "failed": row["failed"],
            "p50": percentile(row["seconds"], 0),
            "p95": percentile(row["seconds"], 1),
            "p99": percentile(row["seconds"], 2),
        }
        for row in snapshot.minutes
    ]
    return page(
        request,
        "system.html",
        snapshot=snapshot,
        minutes=minutes,
        pending_cap=system_reads.PENDING_CAP,
        capped=snapshot.sampled >= system_reads.RECENT_CAP,
        errors=shown,
        next_cursor=shown[-1]["id"] if len(errors) > PAGE else None,
        first_page=before is None,
        wallet_names=names,
    )
