"""The sweeper's statements (psycopg2, bound parameters only): work left pending, holds
past their expiry, idempotency keys past their retention."""

from __future__ import annotations

from shared.db import Cursor

# The oldest pending operation comes first in seq order (the partial index on seq).
PENDING_OLDER_THAN = """
SELECT created_at < now() - make_interval(secs => %(age)s)
FROM operation WHERE status = 'pending'
ORDER BY seq LIMIT 1
"""


def pending_older_than(cur: Cursor, age_seconds: float) -> bool:
    cur.execute(PENDING_OLDER_THAN, {"age": age_seconds})
    row = cur.fetchone()
    return bool(row and row[0])


# Keys past retention, except those of operations (or batches) still pending: a client
# retrying those must still find them.
DELETE_EXPIRED_IDEMPOTENCY_KEYS = """
DELETE FROM idempotency_key
WHERE ctid = ANY (ARRAY(
    SELECT k.ctid FROM idempotency_key k
    WHERE k.created_at < now() - make_interval(hours => %(hours)s)
      AND NOT EXISTS (SELECT 1 FROM operation o
                      WHERE o.id = k.resource_id AND o.status = 'pending')
      AND NOT EXISTS (SELECT 1 FROM operation o
                      WHERE o.batch_id = k.resource_id AND o.status = 'pending')
    LIMIT %(limit)s
))
"""


def delete_expired_idempotency_keys(cur: Cursor, retention_hours: int, limit: int) -> int:
    cur.execute(DELETE_EXPIRED_IDEMPOTENCY_KEYS, {"hours": retention_hours, "limit": limit})
    return int(cur.rowcount)


# An expiry operation for each hold still held past its expires_at, at the end of its
# source wallet's queue (so that a capture or void accepted before the expiry is applied
# before it). One per hold: a hold that already has its expiry is skipped, and a
# concurrent sweeper's duplicate is refused by `uq_operation_expiry_hold_id`.
ENQUEUE_EXPIRIES = """
WITH due AS MATERIALIZED (
    SELECT h.id, h.tenant_id, h.from_wallet_id, h.to_wallet_id, h.amount, o.currency,
           row_number() OVER (PARTITION BY h.from_wallet_id ORDER BY h.expires_at, h.id) AS n
    FROM hold h JOIN operation o ON o.id = h.id
    WHERE h.status = 'held' AND h.expires_at <= now()
      AND NOT EXISTS (SELECT 1 FROM operation e WHERE e.hold_id = h.id AND e.type = 'expiry')
    ORDER BY h.expires_at
    LIMIT %(limit)s
), queues AS (
    UPDATE wallet_sequence s SET last_position = s.last_position + c.n
    FROM (SELECT from_wallet_id, max(n) AS n FROM due GROUP BY from_wallet_id) c
    WHERE s.wallet_id = c.from_wallet_id
    RETURNING s.wallet_id, s.last_position - c.n AS before
)
INSERT INTO operation
    (id, tenant_id, type, amount, currency, from_wallet_id, to_wallet_id, hold_id, position)
SELECT gen_random_uuid(), d.tenant_id, 'expiry', d.amount, d.currency, d.from_wallet_id,
       d.to_wallet_id, d.id, q.before + d.n
FROM due d JOIN queues q ON q.wallet_id = d.from_wallet_id
ON CONFLICT (hold_id) WHERE type = 'expiry' DO NOTHING
"""


def enqueue_expiries(cur: Cursor, limit: int) -> int:
    """Enqueue the expiry of up to `limit` holds past their expiry; how many were."""
    cur.execute(ENQUEUE_EXPIRIES, {"limit": limit})
    return int(cur.rowcount)
