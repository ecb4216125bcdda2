"""The console's pages of what paysys tells the tenant's systems: the event feed (newest
first, each event linked to its resource) and the webhook endpoints with their deliveries
(those still failing first).

Every read is the tenant's and a keyset page of an index; anything not the tenant's is a
404. A deleted endpoint is as if it never existed, as in the API.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from api.console import cursors, feed_reads
from api.console.web import ConsoleRoute, ViewerDep, page, parse_id, resources
from shared.asyncdb import Record
from shared.errors import NotFound
from shared.events import EVENT_TYPES
from shared.events import repository as events
from shared.webhooks import endpoints

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
SMALL_PAGE = 20


def event_link(event_type: str, data: dict[str, Any]) -> tuple[str, str] | None:
    """(what it is about, its console page)."""
    if event_type == "account.created":
        wallet = data.get("wallet") or {}
        return f"Account {data.get('name', '')}", f"/console/wallets/{wallet.get('id')}"
    if event_type == "batch.completed":
        return "Batch", f"/console/batches/{data.get('id')}"
    if event_type == "hold.expired":
        return "Hold", f"/console/operations/{data.get('id')}"
    if event_type.startswith("operation."):
        return f"{str(data.get('type', '')).capitalize()}", f"/console/operations/{data.get('id')}"
    return None


def event_view(row: Record) -> dict[str, Any]:
    data = orjson.loads(row["data"])
    amount = data.get("amount") if isinstance(data, dict) else None
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": row["created_at"],
        "link": event_link(row["type"], data if isinstance(data, dict) else {}),
        "amount": amount if isinstance(amount, str) else None,
        "status": data.get("status") if isinstance(data, dict) else None,
        "data": row["data"],
    }


@router.get("/console/events")
async def events_page(request: Request, viewer: ViewerDep) -> Response:
    res = resources(request)
    chosen = request.query_params.get("type") or ""
    types = [chosen] if chosen in EVENT_TYPES else None
    before = cursors.parse_feed(request.query_params.get("cursor"))
    async with res.pool.acquire() as conn:
        found = await feed_reads.recent_events(conn, viewer.tenant_id, before, types, PAGE + 1)
    shown = found.rows[:PAGE]
    next_cursor = None
    if len(found.rows) > PAGE:
        next_cursor = cursors.feed(int(shown[-1]["feed_xid"]), shown[-1]["seq"])
    elif found.scan_end is not None:
        next_cursor = cursors.feed(*found.scan_end)
    return page(
        request,
        "events.html",
        events=[event_view(row) for row in shown],
        types=EVENT_TYPES,
        chosen=chosen if types else "",
        next_cursor=next_cursor,
        scan_stopped=found.scan_end is not None,
        scanned=feed_reads.TYPE_SCAN,
        first_page=before is None,
    )


@router.get("/console/events/{event_id}")
async def event_page(request: Request, viewer: ViewerDep, event_id: str) -> Response:
    res = resources(request)
    async with res.pool.acquire() as conn:
        row = await events.get_event(conn, parse_id(event_id), viewer.tenant_id)
    if row is None:
        raise NotFound("No such event")
    return page(request, "event.html", event=event_view(row))


@router.get("/console/webhooks")
async def webhooks_page(request: Request, viewer: ViewerDep) -> Response:
    res = resources(request)
    async with res.pool.acquire() as conn:
        rows = await feed_reads.endpoints(conn, viewer.tenant_id, endpoints.MAX_ENDPOINTS + 1)
    return page(request, "webhooks.html", endpoints=rows)


def failed_first(attempts: list[Record]) -> list[Record]:
    """The attempts of a page, those that failed first, each group newest first."""
    return sorted(attempts, key=lambda a: (a["delivered"], -a["id"]))


@router.get("/console/webhooks/{endpoint_id}")
async def endpoint_page(request: Request, viewer: ViewerDep, endpoint_id: str) -> Response:
    res = resources(request)
    eid = parse_id(endpoint_id)
    before = cursors.parse_number(request.query_params.get("cursor"))
    async with res.pool.acquire() as conn:
        endpoint = await feed_reads.endpoint(conn, eid, viewer.tenant_id)
        if endpoint is None:
            raise NotFound("No such webhook endpoint")
        waiting = await feed_reads.undelivered(conn, eid, viewer.tenant_id, SMALL_PAGE + 1)
        attempts = await endpoints.list_attempts(conn, eid, viewer.tenant_id, before, PAGE + 1)
        shown = attempts[:PAGE]
        types = await feed_reads.event_types(
            conn, sorted({a["event_id"] for a in shown}), viewer.tenant_id
        )
    return page(
        request,
        "endpoint.html",
        endpoint=endpoint,
        undelivered=waiting[:SMALL_PAGE],
        more_undelivered=len(waiting) > SMALL_PAGE,
        attempts=failed_first(shown),
        failed_attempts=sum(1 for a in shown if not a["delivered"]),
        event_types=types,
        next_cursor=shown[-1]["id"] if len(attempts) > PAGE else None,
        first_page=before is None,
    )
