"""Fan-out's statements (psycopg2, bound parameters only).

The rule they keep: fan-out reads a tenant's feed as `GET /v1/events` does, in `(xid, seq)`
order and only events whose key is below the snapshot's xmin (no transaction that could
still add an event before them is running). An endpoint's cursor only moves past such
events, so none is ever skipped; the endpoint row is locked while it moves (`SKIP
LOCKED`: fan-outs running at once share the endpoints).

The lock is `FOR NO KEY UPDATE`: the cursor's columns are no key, so the foreign key
checks of rows that reference the endpoint (a redelivery asked for by hand, a sender's
log of an attempt: `FOR KEY SHARE`) do not wait for a round. (With `FOR UPDATE`, a
redelivery waited for the round while the round waited for the redelivery's delivery:
a deadlock.) And a round makes deliveries only of events that have none yet, so it never
waits for a sender's transaction that moves one (a delivery made by hand before fan-out
reached its event) while that transaction waits for the endpoint.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.db import Cursor

# The feed's horizon, in the statement's own snapshot: keys below it are final.
HORIZON = "pg_snapshot_xmin(pg_current_snapshot())"

# Live endpoints with final events past their cursor, locked, skipping those another
# fan-out holds. One index probe per live endpoint (`ix_event_tenant_id_xid_seq`).
BEHIND_ENDPOINTS = f"""
SELECT e.id, e.tenant_id, e.event_types, e.created_at, e.fanout_xid::text, e.fanout_seq
FROM webhook_endpoint e
WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL
  AND EXISTS (SELECT 1 FROM event v
              WHERE v.tenant_id = e.tenant_id
                AND (v.xid, v.seq) > (e.fanout_xid, e.fanout_seq)
                AND v.xid < {HORIZON})
ORDER BY e.fanout_xid
LIMIT %(limit)s
FOR NO KEY UPDATE OF e SKIP LOCKED
"""

# One page of an endpoint's feed turned into deliveries (of the types it subscribed to,
# created since it was registered: its cursor starts at the horizon of its registration,
# which a transaction still running then may hold back), with where the page ended and
# the horizon it was read under. Events that have a delivery already (made by hand) are
# left out before the insert, which would otherwise wait for whoever is moving it.
FAN_OUT_PAGE = f"""
WITH page AS MATERIALIZED (
    SELECT id, xid, seq, type, created_at FROM event
    WHERE tenant_id = %(tenant_id)s
      AND (xid, seq) > (%(xid)s::xid8, %(seq)s)
      AND xid < {HORIZON}
    ORDER BY xid, seq
    LIMIT %(limit)s
), created AS (
    INSERT INTO webhook_delivery
        (endpoint_id, event_id, tenant_id, next_attempt_at, event_created_at)
    SELECT %(endpoint_id)s, id, %(tenant_id)s, now(), created_at FROM page
    WHERE (type = ANY (%(types)s::text[]) OR '*' = ANY (%(types)s::text[]))
      AND created_at >= %(since)s
      AND NOT EXISTS (SELECT 1 FROM webhook_delivery d
                      WHERE d.endpoint_id = %(endpoint_id)s AND d.event_id = page.id)
    ORDER BY xid, seq
    ON CONFLICT DO NOTHING
    RETURNING 1
), last AS (
    SELECT xid, seq FROM page ORDER BY xid DESC, seq DESC LIMIT 1
)
SELECT (SELECT count(*) FROM page), (SELECT count(*) FROM created),
       (SELECT xid::text FROM last), (SELECT seq FROM last), {HORIZON}::text
"""

MOVE_CURSOR = """
UPDATE webhook_endpoint SET fanout_xid = %(xid)s::xid8, fanout_seq = %(seq)s
WHERE id = %(endpoint_id)s
"""

# Live endpoints with events past their cursor that are not final yet (a transaction
# older than them still runs): fan-out will have work once it ends.
WAITING_ENDPOINTS = """
SELECT EXISTS (
    SELECT 1 FROM webhook_endpoint e
    WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL
      AND EXISTS (SELECT 1 FROM event v
                  WHERE v.tenant_id = e.tenant_id
                    AND (v.xid, v.seq) > (e.fanout_xid, e.fanout_seq))
)
"""


def behind_endpoints(cur: Cursor, limit: int) -> list[tuple[Any, ...]]:
    cur.execute(BEHIND_ENDPOINTS, {"limit": limit})
    return list(cur.fetchall())


def fan_out_page(
    cur: Cursor,
    endpoint_id: uuid.UUID,
    tenant_id: uuid.UUID,
    types: list[str],
    since: datetime,
    cursor: tuple[str, int],
    limit: int,
) -> tuple[int, int, str | None, int | None, str]:
    """(events read, deliveries created, last key read, its seq, horizon)."""
    cur.execute(
        FAN_OUT_PAGE,
        {
            "endpoint_id": endpoint_id,
            "tenant_id": tenant_id,
            "types": types,
            "since": since,
            "xid": cursor[0],
            "seq": cursor[1],
            "limit": limit,
        },
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), row[2], row[3], row[4]


def move_cursor(cur: Cursor, endpoint_id: uuid.UUID, cursor: tuple[str, int]) -> None:
    cur.execute(MOVE_CURSOR, {"endpoint_id": endpoint_id, "xid": cursor[0], "seq": cursor[1]})


def any_waiting(cur: Cursor) -> bool:
    cur.execute(WAITING_ENDPOINTS)
    row = cur.fetchone()
    return bool(row and row[0])
