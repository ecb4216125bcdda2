"""The statements of webhook deliveries (psycopg2, bound parameters only): claims,
outcomes, endpoint health, and the sweeper's look (fan-out's are in
`shared.webhooks.fanout_repository`).

The rules they keep:

* A delivery is sent only once claimed: `attempts` counts it and `next_attempt_at` becomes
  the end of its lease, committed before any HTTP. A sender that dies leaves it due again
  when the lease ends (at least once). Deliveries of a deleted or disabled endpoint are
  never claimed; the claim retires those it meets (given up, never sent).
* An outcome moves a delivery only if nobody claimed it since (`attempts` unchanged), or
  to delivered; each attempt is logged once (`uq_webhook_attempt_endpoint_event_attempt`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, event

from shared.db import Cursor
from shared.webhooks.fanout_repository import HORIZON

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


# Attempts' outcomes, a batch in one statement: each logged, and its delivery moved on
# (delivered; or its next attempt `delay` seconds from now; or given up when that would come
# after the event's retry window); an endpoint that answered 2xx is no longer failing. A
# failure moves a delivery only if it was not claimed again since (its lease ended while
# this sender was still at it): that later attempt decides. Returns how many deliveries
# were given up.
RECORD = """
WITH input AS (
    SELECT * FROM unnest(
        %(endpoint_ids)s::uuid[], %(event_ids)s::uuid[], %(tenant_ids)s::uuid[],
        %(attempts)s::int[], %(status_codes)s::int[], %(errors)s::text[],
        %(delivered)s::boolean[], %(delays)s::float8[]
    ) WITH ORDINALITY
      AS i(endpoint_id, event_id, tenant_id, attempt, status_code, error, delivered, delay, n)
), moved AS (
    UPDATE webhook_delivery d SET
        delivered_at = CASE WHEN i.delivered THEN now() END,
        given_up_at = CASE WHEN NOT i.delivered AND now() + make_interval(secs => i.delay)
                               > d.event_created_at + make_interval(secs => %(window)s)
                           THEN now() END,
        next_attempt_at = CASE WHEN i.delivered THEN NULL
                               WHEN now() + make_interval(secs => i.delay)
                                    > d.event_created_at + make_interval(secs => %(window)s)
                               THEN NULL
                               ELSE now() + make_interval(secs => i.delay) END
    FROM input i
    WHERE d.endpoint_id = i.endpoint_id AND d.event_id = i.event_id
      AND d.delivered_at IS NULL AND d.given_up_at IS NULL
      AND (i.delivered OR d.attempts = i.attempt)
    RETURNING d.endpoint_id, d.event_id, d.next_attempt_at, d.given_up_at
), healed AS (
    -- Endpoints with a 2xx in the batch are healthy again (locked in id order, and only
    -- those that were failing; FOR NO KEY UPDATE: no key changes, so foreign key checks
    -- on the endpoint do not wait).
    UPDATE webhook_endpoint SET failing_since = NULL
    WHERE id IN (SELECT e.id FROM webhook_endpoint e
                 WHERE e.id IN (SELECT endpoint_id FROM input WHERE delivered)
                   AND e.failing_since IS NOT NULL
                 ORDER BY e.id
                 FOR NO KEY UPDATE)
), logged AS (
    INSERT INTO webhook_attempt (endpoint_id, event_id, tenant_id, attempt, status_code,
                                 error, delivered, next_attempt_at)
    SELECT i.endpoint_id, i.event_id, i.tenant_id, i.attempt, i.status_code, i.error,
           i.delivered, CASE WHEN NOT i.delivered THEN m.next_attempt_at END
    FROM input i
    LEFT JOIN moved m ON m.endpoint_id = i.endpoint_id AND m.event_id = i.event_id
    ORDER BY i.n
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM moved WHERE given_up_at IS NOT NULL
"""


def record(cur: Cursor, outcomes: list[dict[str, Any]], window_seconds: float) -> int:
    """Log attempts and move their deliveries on (see RECORD); how many were given up."""
    columns = ("endpoint_id", "event_id", "tenant_id", "attempt", "status_code", "error")
    params: dict[str, Any] = {f"{c}s": [o[c] for o in outcomes] for c in columns}
    params["delivered"] = [o["delivered"] for o in outcomes]
    params["delays"] = [o["delay"] for o in outcomes]
    params["window"] = window_seconds
    cur.execute(RECORD, params)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def commit_without_waiting(engine: Engine) -> None:
    """Commits on `engine`'s connections (the webhook senders' process) do not wait for
    their WAL to reach the disk. Safe for what the senders write: a commit lost with a
    crash of PostgreSQL only undoes a claim, an outcome or a move of fan-out, and each is
    then done again (a delivery sent once more: at least once still holds); meanwhile no
    commit waits on a disk flush."""

    @event.listens_for(engine, "connect")
    def _relax(dbapi_connection: Any, _: Any) -> None:
        with dbapi_connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
        dbapi_connection.commit()


# Claimed deliveries taken back before they were sent (queued behind an attempt to an
# endpoint that has just failed, or the sender is stopping): due again at once, their
# attempt not counted, unless claimed again since.
RELEASE = """
UPDATE webhook_delivery d SET attempts = d.attempts - 1, next_attempt_at = now()
FROM unnest(%(endpoint_ids)s::uuid[], %(event_ids)s::uuid[], %(attempts)s::int[])
     AS r(endpoint_id, event_id, attempt)
WHERE d.endpoint_id = r.endpoint_id AND d.event_id = r.event_id AND d.attempts = r.attempt
  AND d.delivered_at IS NULL AND d.given_up_at IS NULL
"""


def release(cur: Cursor, deliveries: list[tuple[uuid.UUID, uuid.UUID, int]]) -> None:
    endpoint_ids, event_ids, attempts = (list(column) for column in zip(*deliveries, strict=True))
    cur.execute(
        RELEASE, {"endpoint_ids": endpoint_ids, "event_ids": event_ids, "attempts": attempts}
    )


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
