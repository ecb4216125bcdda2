"""The console's reads of events and webhook endpoints (asyncpg, bound parameters only),
under the rules of `reads`: the tenant's rows only, index ranges bounded by a LIMIT.

One more: a filter the index cannot serve (events of one type) examines at most
`TYPE_SCAN` events per page; when those hold too few of the type, the page says where it
stopped, and the next page goes on from there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from api.console.reads import MAX_BIGINT
from shared.asyncdb import Connection, Record

TYPE_SCAN = 10_000
MAX_XID8 = (1 << 64) - 1

# The tenant's events, newest first: `ix_event_tenant_id_xid_seq` backwards. (An operator
# reads what just happened; consumers tail the feed oldest first, under its horizon.)
RECENT_EVENTS = """
SELECT id, type, created_at, data::text AS data, xid::text::numeric AS feed_xid, seq
FROM event
WHERE tenant_id = $1 AND (xid, seq) < ($2::numeric::text::xid8, $3::bigint)
ORDER BY xid DESC, seq DESC
LIMIT $4
"""

# The same, of some types only, among the next $5 events at most; and, when that many were
# examined, where the examination stopped (a row with `scan_end`, last).
RECENT_EVENTS_OF_TYPES = """
WITH scanned AS MATERIALIZED (
    SELECT id, type, created_at, xid, seq FROM event
    WHERE tenant_id = $1 AND (xid, seq) < ($2::numeric::text::xid8, $3::bigint)
    ORDER BY xid DESC, seq DESC
    LIMIT $5
), picked AS (
    SELECT * FROM scanned WHERE type = ANY($6::text[])
    ORDER BY xid DESC, seq DESC
    LIMIT $4
)
SELECT * FROM (
    SELECT id, type, created_at, (SELECT data::text FROM event e WHERE e.id = p.id) AS data,
           xid::text::numeric AS feed_xid, seq, false AS scan_end
    FROM picked p
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, xid::text::numeric, seq, true
    FROM (SELECT xid, seq FROM scanned ORDER BY xid, seq LIMIT 1) last
    WHERE (SELECT count(*) FROM scanned) = $5
) page
ORDER BY scan_end, feed_xid DESC, seq DESC
"""


@dataclass(slots=True)
class EventPage:
    rows: list[Record]
    # With a type filter, where the examination stopped short of a full page; None if it
    # did not.
    scan_end: tuple[int, int] | None = None


async def recent_events(
    conn: Connection,
    tenant_id: uuid.UUID,
    before: tuple[int, int] | None,
    types: list[str] | None,
    limit: int,
) -> EventPage:
    xid, seq = before or (MAX_XID8, MAX_BIGINT)
    if types is None:
        return EventPage(await conn.fetch(RECENT_EVENTS, tenant_id, xid, seq, limit))
    rows = await conn.fetch(RECENT_EVENTS_OF_TYPES, tenant_id, xid, seq, limit, TYPE_SCAN, types)
    ends = [r for r in rows if r["scan_end"]]
    page = EventPage([r for r in rows if not r["scan_end"]])
    if ends and len(page.rows) < limit:
        page.scan_end = (int(ends[0]["feed_xid"]), ends[0]["seq"])
    return page


# --- Webhook endpoints ------------------------------------------------------------------

ENDPOINT_COLUMNS = """
    e.id, e.url, e.event_types, e.description, e.created_at, e.disabled_at,
    e.disabled_reason, e.failing_since,
    (SELECT min(d.event_created_at) FROM webhook_delivery d
     WHERE d.endpoint_id = e.id AND d.next_attempt_at IS NOT NULL) AS oldest_undelivered
"""

# A tenant has at most 20 endpoints (`shared.webhooks.endpoints.MAX_ENDPOINTS`).
ENDPOINTS = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint e
WHERE e.tenant_id = $1 AND e.deleted_at IS NULL
ORDER BY e.id DESC
LIMIT $2
"""

ENDPOINT = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint e
WHERE e.id = $1 AND e.tenant_id = $2 AND e.deleted_at IS NULL
"""


async def endpoints(conn: Connection, tenant_id: uuid.UUID, limit: int) -> list[Record]:
    return await conn.fetch(ENDPOINTS, tenant_id, limit)


async def endpoint(conn: Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(ENDPOINT, endpoint_id, tenant_id)


# The endpoint's deliveries still to make, oldest event first
# (`ix_webhook_delivery_undelivered`), with their last attempt's outcome.
UNDELIVERED = """
SELECT d.event_id, d.attempts, d.next_attempt_at, d.event_created_at, v.type AS event_type,
       last.status_code, last.error, last.created_at AS last_attempt_at
FROM webhook_delivery d
JOIN event v ON v.id = d.event_id
LEFT JOIN webhook_attempt last
       ON last.endpoint_id = d.endpoint_id AND last.event_id = d.event_id
      AND last.attempt = d.attempts
WHERE d.endpoint_id = $1 AND d.tenant_id = $2 AND d.next_attempt_at IS NOT NULL
ORDER BY d.event_created_at
LIMIT $3
"""


async def undelivered(
    conn: Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID, limit: int
) -> list[Record]:
    return await conn.fetch(UNDELIVERED, endpoint_id, tenant_id, limit)


# One probe of the primary key per id, a subquery each (`id = ANY($1)`, or a join, lets a
# generic plan scan the tenant's events instead).
EVENT_TYPES_OF = """
SELECT wanted.id, (SELECT type FROM event WHERE id = wanted.id AND tenant_id = $2) AS type
FROM unnest($1::uuid[]) AS wanted (id)
"""


async def event_types(
    conn: Connection, event_ids: list[uuid.UUID], tenant_id: uuid.UUID
) -> dict[uuid.UUID, str]:
    """The types of these events (primary key probes), for the delivery log."""
    rows = await conn.fetch(EVENT_TYPES_OF, event_ids, tenant_id)
    return {row["id"]: row["type"] for row in rows if row["type"] is not None}
