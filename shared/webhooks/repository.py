"""The outcomes of webhook deliveries (psycopg2, bound parameters only): attempts logged,
deliveries moved on, endpoint health. Claims and the looks at what is due are
`shared.webhooks.claim_repository`'s, fan-out's `shared.webhooks.fanout_repository`'s.

The rule they keep: an outcome moves a delivery only if nobody claimed it since
(`attempts` unchanged), or to delivered; each attempt is logged once
(`uq_webhook_attempt_endpoint_event_attempt`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, event

from shared.db import Cursor

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
           i.delivered,
           -- The delivery's next attempt: as this moved it, or, if a later claim overtook
           -- this attempt (not moved), as it stands (this statement's snapshot).
           CASE WHEN i.delivered THEN NULL
                WHEN m.endpoint_id IS NOT NULL THEN m.next_attempt_at
                ELSE d.next_attempt_at END
    FROM input i
    LEFT JOIN moved m ON m.endpoint_id = i.endpoint_id AND m.event_id = i.event_id
    LEFT JOIN webhook_delivery d ON d.endpoint_id = i.endpoint_id AND d.event_id = i.event_id
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
