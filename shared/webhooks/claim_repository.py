"""Which deliveries are sent next (psycopg2, bound parameters only): claims, deliveries
given back unsent, and the looks of the loop and the sweeper at what is due. Outcomes
are `shared.webhooks.repository`'s, fan-out's `shared.webhooks.fanout_repository`'s.

The rules they keep:

* A delivery is sent only once claimed: `attempts` counts it and `next_attempt_at` becomes
  the end of its lease, committed before any HTTP. A sender that dies leaves it due again
  when the lease ends (at least once).
* Claims go endpoint by endpoint, round-robin: each endpoint's soonest due delivery
  first, then each one's second, and so on; and at most `cap` claimed at once per
  endpoint in a process (`failing_cap` for one that is failing), so that no endpoint
  holds every sending thread, however slow it answers or however long its backlog.
* A disabled endpoint's deliveries are not claimed, and stay as they are: enabling it
  resumes them. A deleted endpoint's are retired (given up, never sent) by the claims
  that meet them.
* Each look reads only the endpoints that have pending deliveries, one index probe each
  (`ix_webhook_delivery_endpoint_due`, skipped through endpoint by endpoint), whatever
  the backlog behind them.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db import Cursor
from shared.webhooks.fanout_repository import HORIZON

# Every endpoint with pending deliveries, and when its soonest is due: a skip scan of
# `ix_webhook_delivery_endpoint_due`, one probe per endpoint (a recursive CTE: WITH
# RECURSIVE).
PENDING = """
pending (endpoint_id, next_attempt_at) AS (
    (SELECT endpoint_id, next_attempt_at FROM webhook_delivery
     WHERE next_attempt_at IS NOT NULL
     ORDER BY endpoint_id, next_attempt_at LIMIT 1)
    UNION ALL
    SELECT n.endpoint_id, n.next_attempt_at FROM pending p
    CROSS JOIN LATERAL (SELECT endpoint_id, next_attempt_at FROM webhook_delivery
                        WHERE next_attempt_at IS NOT NULL AND endpoint_id > p.endpoint_id
                        ORDER BY endpoint_id, next_attempt_at LIMIT 1) n
)"""

# Due deliveries, round-robin over the endpoints that have some (see the module's rules),
# each endpoint's room being its cap less what this process holds of it already (`busy`).
# A deleted endpoint's pending deliveries are retired on the way, `retire` at most each.
CLAIM = f"""
WITH RECURSIVE {PENDING},
busy AS (
    SELECT * FROM unnest(%(busy_ids)s::uuid[], %(busy_counts)s::int[]) AS b(endpoint_id, n)
), endpoints AS MATERIALIZED (
    SELECT e.id, e.deleted_at IS NOT NULL AS deleted,
           CASE WHEN e.failing_since IS NULL THEN %(cap)s ELSE %(failing_cap)s END
             - COALESCE(b.n, 0) AS room
    FROM pending p
    JOIN webhook_endpoint e ON e.id = p.endpoint_id
    LEFT JOIN busy b ON b.endpoint_id = e.id
    WHERE e.deleted_at IS NOT NULL OR (e.disabled_at IS NULL AND p.next_attempt_at <= now())
), retired AS (
    UPDATE webhook_delivery d SET next_attempt_at = NULL, given_up_at = now()
    WHERE d.ctid = ANY (ARRAY(
        SELECT r.ctid FROM endpoints e
        CROSS JOIN LATERAL (SELECT ctid FROM webhook_delivery
                            WHERE endpoint_id = e.id AND next_attempt_at IS NOT NULL
                            ORDER BY next_attempt_at LIMIT %(retire)s) r
        WHERE e.deleted
        LIMIT %(retire)s))
      AND d.next_attempt_at IS NOT NULL
    RETURNING 1
), candidates AS (
    SELECT c.endpoint_id, c.event_id, c.next_attempt_at,
           row_number() OVER (PARTITION BY c.endpoint_id
                              ORDER BY c.next_attempt_at, c.event_id) AS turn
    FROM endpoints e
    CROSS JOIN LATERAL (SELECT endpoint_id, event_id, next_attempt_at FROM webhook_delivery
                        WHERE endpoint_id = e.id AND next_attempt_at <= now()
                        ORDER BY next_attempt_at LIMIT greatest(e.room, 0)) c
    WHERE NOT e.deleted AND e.room > 0
), chosen AS MATERIALIZED (
    SELECT endpoint_id, event_id FROM candidates
    ORDER BY turn, next_attempt_at
    LIMIT %(limit)s
), picked AS (
    SELECT d.endpoint_id, d.event_id FROM chosen c
    JOIN webhook_delivery d ON d.endpoint_id = c.endpoint_id AND d.event_id = c.event_id
    WHERE d.next_attempt_at <= now()
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

# Deliveries a deleted endpoint's claim retires at most, per claim.
RETIRE_PER_CLAIM = 500


def claim(
    cur: Cursor,
    *,
    limit: int,
    lease_seconds: float,
    cap: int,
    failing_cap: int,
    busy: dict[uuid.UUID, int],
) -> list[tuple[Any, ...]]:
    cur.execute(
        CLAIM,
        {
            "limit": limit,
            "lease": lease_seconds,
            "cap": cap,
            "failing_cap": failing_cap,
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "retire": RETIRE_PER_CLAIM,
        },
    )
    return list(cur.fetchall())


# Claimed deliveries taken back unsent: queued behind an attempt to an endpoint that has
# just failed, or the sender is stopping (due again at once); or put off for a cause inside
# paysys, not the receiver's (due `delay` seconds from now). Their attempt is not counted,
# unless they were claimed again since.
RELEASE = """
UPDATE webhook_delivery d SET attempts = d.attempts - 1,
                              next_attempt_at = now() + make_interval(secs => r.delay)
FROM unnest(%(endpoint_ids)s::uuid[], %(event_ids)s::uuid[], %(attempts)s::int[],
            %(delays)s::float8[])
     AS r(endpoint_id, event_id, attempt, delay)
WHERE d.endpoint_id = r.endpoint_id AND d.event_id = r.event_id AND d.attempts = r.attempt
  AND d.delivered_at IS NULL AND d.given_up_at IS NULL
"""


def release(
    cur: Cursor, deliveries: list[tuple[uuid.UUID, uuid.UUID, int]], delay: float = 0.0
) -> None:
    """Give back claimed deliveries `(endpoint_id, event_id, attempt)`, due in `delay`
    seconds."""
    endpoint_ids, event_ids, attempts = (list(column) for column in zip(*deliveries, strict=True))
    cur.execute(
        RELEASE,
        {
            "endpoint_ids": endpoint_ids,
            "event_ids": event_ids,
            "attempts": attempts,
            "delays": [delay] * len(deliveries),
        },
    )


# When the soonest claimable delivery is due, in seconds from now (negative: overdue), if
# any; a deleted endpoint's pending deliveries are due at once (to be retired).
NEXT_DUE = f"""
WITH RECURSIVE {PENDING}
SELECT EXTRACT(EPOCH FROM min(CASE WHEN e.deleted_at IS NULL THEN p.next_attempt_at
                                   ELSE now() END) - now())::float8
FROM pending p JOIN webhook_endpoint e ON e.id = p.endpoint_id
WHERE e.deleted_at IS NOT NULL OR e.disabled_at IS NULL
"""


def next_due_in(cur: Cursor) -> float | None:
    cur.execute(NEXT_DUE)
    row = cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


# The sweeper's look: a delivery due (or one to retire), or a live endpoint with final
# events not fanned out.
WORK_WAITING = f"""
WITH RECURSIVE {PENDING}
SELECT EXISTS (SELECT 1 FROM pending p JOIN webhook_endpoint e ON e.id = p.endpoint_id
               WHERE e.deleted_at IS NOT NULL
                  OR (e.disabled_at IS NULL AND p.next_attempt_at <= now()))
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
