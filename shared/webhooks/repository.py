"""The statements of webhook deliveries (psycopg2, bound parameters only): fan-out, claims,
outcomes, endpoint health, and the sweeper's and /metrics' looks.

The rules they keep:

* Fan-out reads a tenant's feed as `GET /v1/events` does: in `(xid, seq)` order, and only
  events whose key is below the snapshot's xmin (no transaction that could still add an
  event before them is running). An endpoint's cursor only moves past such events, so
  none is ever skipped; the endpoint row is locked while it moves (`SKIP LOCKED`: fan-outs
  running at once share the endpoints).
* A delivery is sent only once claimed: `attempts` counts it and `next_attempt_at` becomes
  the end of its lease, committed before any HTTP. A sender that dies leaves it due again
  when the lease ends (at least once). Deliveries of a deleted or disabled endpoint are
  never claimed; the claim retires those it meets (given up, never sent).
* An outcome moves a delivery only if nobody claimed it since (`attempts` unchanged), or
  to delivered; each attempt is logged once (`uq_webhook_attempt_endpoint_event_attempt`).
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
FOR UPDATE OF e SKIP LOCKED
"""

# One page of an endpoint's feed turned into deliveries (of the types it subscribed to,
# created since it was registered: its cursor starts at the horizon of its registration,
# which a transaction still running then may hold back), with where the page ended and
# the horizon it was read under.
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


# Due deliveries, soonest first, at most `cap` per endpoint counting those this process
# already has in flight (`busy_ids`/`busy_counts`), fewer for an endpoint that is failing:
# a dead receiver then holds a few senders, never all of them. Candidates come from the
# due index (`ix_webhook_delivery_due`); those of a deleted or disabled endpoint are
# retired on the way.
CLAIM = """
WITH busy AS (
    SELECT * FROM unnest(%(busy_ids)s::uuid[], %(busy_counts)s::int[]) AS b(endpoint_id, n)
), candidates AS MATERIALIZED (
    SELECT d.endpoint_id, d.event_id, d.next_attempt_at,
           e.deleted_at IS NULL AND e.disabled_at IS NULL AS live,
           row_number() OVER (PARTITION BY d.endpoint_id
                              ORDER BY d.next_attempt_at, d.event_id)
             + COALESCE(b.n, 0)
             <= CASE WHEN e.failing_since IS NULL THEN %(cap)s ELSE %(failing_cap)s END
             AS within_cap
    FROM (SELECT endpoint_id, event_id, next_attempt_at FROM webhook_delivery
          WHERE next_attempt_at <= now() AND endpoint_id <> ALL (%(full)s::uuid[])
          ORDER BY next_attempt_at
          LIMIT %(scan)s) d
    JOIN webhook_endpoint e ON e.id = d.endpoint_id
    LEFT JOIN busy b ON b.endpoint_id = d.endpoint_id
), retired AS (
    UPDATE webhook_delivery d SET next_attempt_at = NULL, given_up_at = now()
    FROM candidates c
    WHERE NOT c.live AND d.endpoint_id = c.endpoint_id AND d.event_id = c.event_id
      AND d.next_attempt_at IS NOT NULL
    RETURNING 1
), picked AS (
    SELECT d.endpoint_id, d.event_id FROM webhook_delivery d
    JOIN candidates c ON c.endpoint_id = d.endpoint_id AND c.event_id = d.event_id
    WHERE c.live AND c.within_cap AND d.next_attempt_at <= now()
    ORDER BY c.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_delivery d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => %(lease)s)
FROM picked p, webhook_endpoint e, event v
WHERE d.endpoint_id = p.endpoint_id AND d.event_id = p.event_id
  AND e.id = d.endpoint_id AND v.id = d.event_id
RETURNING d.endpoint_id, d.event_id, d.tenant_id, d.attempts, e.url, e.secret,
          e.failing_since IS NOT NULL, v.type, v.created_at, v.data::text,
          (SELECT count(*) FROM retired)
"""


def claim(
    cur: Cursor,
    *,
    limit: int,
    lease_seconds: float,
    cap: int,
    failing_cap: int,
    busy: dict[uuid.UUID, int],
    full: list[uuid.UUID],
) -> list[tuple[Any, ...]]:
    cur.execute(
        CLAIM,
        {
            "limit": limit,
            "scan": limit * 4 + 64,
            "lease": lease_seconds,
            "cap": cap,
            "failing_cap": failing_cap,
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "full": full,
        },
    )
    return list(cur.fetchall())


# An attempt's outcome: logged, and the delivery moved on (delivered; or its next attempt
# `delay` seconds from now; or given up when that would come after the event's retry
# window). A failure moves it only if it was not claimed again since (its lease ended
# while this sender was still at it): that later attempt decides.
RECORD = """
WITH moved AS (
    UPDATE webhook_delivery SET
        delivered_at = CASE WHEN %(delivered)s THEN now() END,
        given_up_at = CASE WHEN NOT %(delivered)s AND now() + make_interval(secs => %(delay)s)
                               > event_created_at + make_interval(secs => %(window)s)
                           THEN now() END,
        next_attempt_at = CASE WHEN %(delivered)s THEN NULL
                               WHEN now() + make_interval(secs => %(delay)s)
                                    > event_created_at + make_interval(secs => %(window)s)
                               THEN NULL
                               ELSE now() + make_interval(secs => %(delay)s) END
    WHERE endpoint_id = %(endpoint_id)s AND event_id = %(event_id)s
      AND delivered_at IS NULL AND given_up_at IS NULL
      AND (%(delivered)s OR attempts = %(attempt)s)
    RETURNING next_attempt_at, given_up_at
)
INSERT INTO webhook_attempt
    (endpoint_id, event_id, tenant_id, attempt, status_code, error, delivered, next_attempt_at)
VALUES (%(endpoint_id)s, %(event_id)s, %(tenant_id)s, %(attempt)s, %(status_code)s,
        %(error)s, %(delivered)s, (SELECT next_attempt_at FROM moved))
ON CONFLICT DO NOTHING
RETURNING (SELECT given_up_at IS NOT NULL FROM moved)
"""


def record(cur: Cursor, params: dict[str, Any]) -> bool:
    """Log one attempt and move its delivery on; True if the delivery was given up."""
    cur.execute(RECORD, params)
    row = cur.fetchone()
    return bool(row and row[0])


# A 2xx: the endpoint is healthy (no lock taken when it already was).
CLEAR_FAILING = """
UPDATE webhook_endpoint SET failing_since = NULL
WHERE id = %(endpoint_id)s AND failing_since IS NOT NULL
"""

# Only failures: failing since now if it was not yet; disabled once every delivery has
# failed for `after` seconds. No lock taken when neither changes.
MARK_FAILING = """
UPDATE webhook_endpoint SET
    failing_since = COALESCE(failing_since, now()),
    disabled_at = CASE WHEN failing_since < now() - make_interval(secs => %(after)s)
                       THEN now() END,
    disabled_reason = CASE WHEN failing_since < now() - make_interval(secs => %(after)s)
                           THEN %(reason)s END
WHERE id = %(endpoint_id)s AND deleted_at IS NULL AND disabled_at IS NULL
  AND (failing_since IS NULL OR failing_since < now() - make_interval(secs => %(after)s))
RETURNING disabled_at IS NOT NULL, tenant_id
"""


def clear_failing(cur: Cursor, endpoint_id: uuid.UUID) -> None:
    cur.execute(CLEAR_FAILING, {"endpoint_id": endpoint_id})


def mark_failing(
    cur: Cursor, endpoint_id: uuid.UUID, after_seconds: float, reason: str
) -> uuid.UUID | None:
    """The endpoint's tenant if this disabled it."""
    cur.execute(
        MARK_FAILING, {"endpoint_id": endpoint_id, "after": after_seconds, "reason": reason}
    )
    row = cur.fetchone()
    return row[1] if row and row[0] else None


# When the soonest delivery is due, in seconds from now (negative: overdue), if any.
NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM next_attempt_at - now())::float8 FROM webhook_delivery
WHERE next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1
"""


def next_due_in(cur: Cursor) -> float | None:
    cur.execute(NEXT_DUE)
    row = cur.fetchone()
    return None if row is None else float(row[0])


# The sweeper's look: a delivery due, or an endpoint with final events not fanned out.
WORK_WAITING = f"""
SELECT EXISTS (SELECT 1 FROM webhook_delivery WHERE next_attempt_at <= now())
    OR EXISTS (SELECT 1 FROM webhook_endpoint e
               WHERE e.deleted_at IS NULL AND e.disabled_at IS NULL
                 AND EXISTS (SELECT 1 FROM event v
                             WHERE v.tenant_id = e.tenant_id
                               AND (v.xid, v.seq) > (e.fanout_xid, e.fanout_seq)
                               AND v.xid < {HORIZON}))
"""


def work_waiting(cur: Cursor) -> bool:
    cur.execute(WORK_WAITING)
    row = cur.fetchone()
    return bool(row and row[0])
