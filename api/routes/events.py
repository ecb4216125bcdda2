"""Events: the tenant's feed, oldest first, with long poll (see docs/API.md, "Events and
webhooks", and `shared/events/repository.py` for why a cursor never skips an event).

A `?wait=` poll that finds nothing new waits for an announcement on the completion hub
(`e:<tenant>`, published after the commit of every transaction that wrote the tenant's
events), not for a timer. It re-reads early only while events it cannot serve yet are known
to exist (committed above the horizon, for the milliseconds until older transactions end),
and at most every `SAFETY_RECHECK_SECONDS` otherwise, which only matters if an announcement
was lost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal, get_args
from uuid import UUID

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from api.deps import Limit, ResourcesDep, TenantDep, Wait, problem_responses
from api.jsonbody import JsonRoute
from api.responses import Model
from shared.doorbell import events_key
from shared.errors import FieldError, NotFound, ValidationFailed
from shared.events import EVENT_TYPES
from shared.events import repository as events
from shared.resources.events import Event, EventPage, event

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["events"])

SAFETY_RECHECK_SECONDS = 5.0
HELD_BACK_RECHECK_SECONDS = 0.02

EventCursor = Annotated[
    str | None,
    Query(
        pattern=r"^f[0-9]{1,19}_[0-9]{1,18}$",
        description="`next_cursor` of the previous page; without it, the feed's beginning",
    ),
]
EventType = Literal[
    "account.created", "operation.succeeded", "operation.failed", "batch.completed", "hold.expired"
]
assert set(get_args(EventType)) == set(EVENT_TYPES)
EventTypes = Annotated[
    list[EventType] | None,
    Query(alias="type", description="Only events of these types (repeatable)"),
]
MAX_XID = 2**63 - 1


def encode_cursor(position: tuple[int, int]) -> str:
    return f"f{position[0]}_{position[1]}"


def decode_cursor(cursor: str | None) -> tuple[int, int]:
    if cursor is None:
        return (0, 0)
    xid, seq = cursor[1:].split("_")
    position = (int(xid), int(seq))
    if position[0] > MAX_XID:
        raise ValidationFailed([FieldError(["query", "cursor"], "not a position of this feed")])
    return position


def check_types(types: list[EventType] | None) -> list[str] | None:
    """The types asked for (validated by the query's schema), each once; None for all."""
    return sorted(set(types)) if types else None


@router.get(
    "/events",
    response_model=EventPage,
    summary="The tenant's events, oldest first; tail it with next_cursor (and wait)",
    responses=problem_responses(422, 429),
)
async def list_events(
    res: ResourcesDep,
    tenant: TenantDep,
    limit: Limit = 50,
    cursor: EventCursor = None,
    event_type: EventTypes = None,
    wait: Wait = None,
) -> Response:
    after = decode_cursor(cursor)
    types = check_types(event_type)

    async def read() -> events.FeedPage:
        async with res.pool.acquire() as conn:
            return await events.read_feed(conn, tenant, after, types, limit)

    async def pending() -> bool:
        async with res.pool.acquire() as conn:
            return await events.held_back(conn, tenant, after, types)

    if not wait:
        page = await read()
    else:
        deadline = time.monotonic() + wait
        # Watch before the first read: an announcement during the read must not be lost.
        with res.hub.watch(events_key(tenant), tenant) as announced:
            page = await read()
            while not page.rows and announced is not None and not res.hub.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                pause = HELD_BACK_RECHECK_SECONDS if await pending() else SAFETY_RECHECK_SECONDS
                try:
                    await asyncio.wait_for(announced.wait(), timeout=min(remaining, pause))
                except TimeoutError:
                    pass
                announced.clear()
                page = await read()

    rows = page.rows
    position = after
    if rows:
        position = (int(rows[-1]["feed_xid"]), rows[-1]["seq"])
    if len(rows) < limit:
        # Nothing this page could show is left below the horizon: start there next time.
        position = max(position, (page.horizon, 0))
    items = [event(r["id"], r["type"], r["created_at"], r["data"]) for r in rows]
    return Model(EventPage.model_construct(items=items, next_cursor=encode_cursor(position)))


@router.get(
    "/events/{event_id}",
    response_model=Event,
    summary="One event",
    responses=problem_responses(404, 422, 429),
)
async def get_event(
    res: ResourcesDep,
    tenant: TenantDep,
    event_id: Annotated[UUID, Path(description="Event id")],
) -> Response:
    async with res.pool.acquire() as conn:
        row = await events.get_event(conn, event_id, tenant)
    if row is None:
        raise NotFound("event not found")
    return Model(event(row["id"], row["type"], row["created_at"], row["data"]))
