"""Statements on events for the API (asyncpg, bound parameters only): writing an event at
intake (account creation) and reading the feed.

The feed's rule: a reader never passes an event that commits later. Events are ordered by
their feed key and sequence, `(xid, seq)`, and the feed serves only events whose key is
below `pg_snapshot_xmin(pg_current_snapshot())`, the oldest transaction still running:
every transaction that could still commit an event has an id at or above it, and an
event's key is never below its transaction's id (see the migration 0004). So what a page
shows is final, in order, and a cursor is a position nothing can later appear before.
Events already committed above the horizon wait for it (milliseconds, while older
transactions finish); `held_back` says whether there are any.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.asyncdb import Connection, Record

INSERT_EVENT = """
INSERT INTO event (id, tenant_id, type, data) VALUES ($1, $2, $3, $4::text::json)
"""


async def insert_event(
    conn: Connection, event_id: uuid.UUID, tenant_id: uuid.UUID, event_type: str, data: bytes
) -> None:
    await conn.execute(INSERT_EVENT, event_id, tenant_id, event_type, data.decode())


EVENT_COLUMNS = "id, type, created_at, data::text AS data, xid::text::numeric AS feed_xid, seq"

# One statement, one snapshot: the page and the horizon it was cut at.
READ_FEED = f"""
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT (SELECT xmin::text::numeric FROM horizon) AS horizon, page.*
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT {EVENT_COLUMNS} FROM event
    WHERE tenant_id = $1
      AND (xid, seq) > ($2::numeric::text::xid8, $3::bigint)
      AND xid < (SELECT xmin FROM horizon)
      AND ($4::text[] IS NULL OR type = ANY($4::text[]))
    ORDER BY xid, seq
    LIMIT $5
) page ON true
"""


@dataclass(slots=True)
class FeedPage:
    rows: list[Record]
    # Where the page was cut: every event below it that the page could show is final.
    horizon: int


async def read_feed(
    conn: Connection,
    tenant_id: uuid.UUID,
    after: tuple[int, int],
    types: list[str] | None,
    limit: int,
) -> FeedPage:
    records = await conn.fetch(READ_FEED, tenant_id, after[0], after[1], types, limit)
    return FeedPage(
        rows=[r for r in records if r["id"] is not None], horizon=int(records[0]["horizon"])
    )


HELD_BACK = """
SELECT EXISTS (
    SELECT 1 FROM event
    WHERE tenant_id = $1
      AND (xid, seq) > ($2::numeric::text::xid8, $3::bigint)
      AND xid >= pg_snapshot_xmin(pg_current_snapshot())
      AND ($4::text[] IS NULL OR type = ANY($4::text[]))
)
"""


async def held_back(
    conn: Connection, tenant_id: uuid.UUID, after: tuple[int, int], types: list[str] | None
) -> bool:
    """Whether events after `after` have committed but are not yet under the horizon."""
    return bool(await conn.fetchval(HELD_BACK, tenant_id, after[0], after[1], types))


GET_EVENT = f"SELECT {EVENT_COLUMNS} FROM event WHERE id = $1 AND tenant_id = $2"


async def get_event(conn: Connection, event_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(GET_EVENT, event_id, tenant_id)
