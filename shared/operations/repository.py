"""Statements on operations and replenishment batches (asyncpg, bound parameters only):
recording a new operation with its idempotency key, and the API's reads. The drain's own
statements are in `shared.ledger.repository`."""

from __future__ import annotations

import uuid
from typing import Any

from shared.asyncdb import Connection, Record
from shared.operations.kind import NewOperation

# An operation as the API shows it: its ledger transaction (if it succeeded) joined in.
OPERATION_COLUMNS = """
    o.id, o.type, o.status, o.amount, o.currency, o.wallet_id, o.from_wallet_id,
    o.to_wallet_id, o.reference, o.batch_id, t.id AS transaction_id, o.hold_id,
    o.reverses_operation_id, o.reversed_amount, o.error_code, o.error_message, o.created_at,
    o.completed_at
"""
OPERATION_FROM = "operation o LEFT JOIN transaction t ON t.operation_id = o.id"
# What an insert returns: a new operation is pending and has no transaction yet.
NEW_OPERATION_COLUMNS = """
    id, type, status, amount, currency, wallet_id, from_wallet_id, to_wallet_id,
    reference, batch_id, NULL::uuid AS transaction_id, hold_id, reverses_operation_id,
    reversed_amount, error_code, error_message, created_at, completed_at
"""

# Idempotency record and operation in one statement, only if every wallet the request
# names is the tenant's; it always returns one row, which says what happened: the new
# operation's columns, or none of them with the tenant's wallets among those named (so a
# missing one is known without asking again). The key's primary key makes a concurrent
# duplicate wait for the first request's commit and then insert nothing (ON CONFLICT DO
# NOTHING). The operation takes the next position in its queue wallet's sequence under
# that row's lock, held until this statement commits: positions are in commit order. Its
# acceptance time is read once that lock is held (clock_timestamp(), not the transaction's
# start): whatever the sweeper queues on the wallet before it (a hold's expiry, which it
# queues under the same lock for holds expired by then) was queued before it was accepted,
# and whatever it queues after, after; so "accepted before the expiry" and "applied before
# the release" are one thing.
CREATE_OPERATION = f"""
WITH named AS MATERIALIZED (
    SELECT COALESCE(array_agg(id), '{{}}') AS found
    FROM wallet WHERE id = ANY($3::uuid[]) AND tenant_id = $1
), idem AS (
    INSERT INTO idempotency_key
        (tenant_id, key, request_hash, resource_type, resource_id, status_code)
    SELECT $1, $2, $4, 'operation', $5, 202
    FROM named WHERE cardinality(named.found) = cardinality($3::uuid[])
    ON CONFLICT DO NOTHING
    RETURNING resource_id
), queue AS (
    UPDATE wallet_sequence SET last_position = last_position + 1
    WHERE wallet_id = $6 AND EXISTS (SELECT 1 FROM idem)
    RETURNING last_position
), created AS (
    INSERT INTO operation
        (id, tenant_id, type, amount, currency, wallet_id, from_wallet_id, to_wallet_id,
         reference, idempotency_key, request_id, position, hold_id, reverses_operation_id,
         created_at, expires_at)
    SELECT idem.resource_id, $1, $7, $8, $9, $10, $11, $12, $13, $2, $14, queue.last_position,
           $15, $16, clock_timestamp(), clock_timestamp() + make_interval(secs => $17::int)
    FROM idem LEFT JOIN queue ON true  -- no queue row: position NULL, refused
    RETURNING {NEW_OPERATION_COLUMNS}
)
SELECT (SELECT found FROM named) AS found_wallets, created.*
FROM (SELECT 1) AS one LEFT JOIN created ON true
"""


async def create_operation(
    conn: Connection,
    new: NewOperation,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    request_hash: bytes,
    operation_id: uuid.UUID,
    request_id: str | None,
) -> Record:
    """The new operation (`id` set), or a row whose `id` is None: then `found_wallets`
    tells whether a named wallet is missing, and if none is, the key was taken."""
    row = await conn.fetchrow(
        CREATE_OPERATION,
        tenant_id,
        idempotency_key,
        new.named_wallets,
        request_hash,
        operation_id,
        new.queue_wallet_id,
        new.kind,
        new.amount,
        new.currency,
        new.wallet_id,
        new.from_wallet_id,
        new.to_wallet_id,
        new.reference,
        request_id,
        new.hold_id,
        new.reverses_operation_id,
        new.expires_in,
    )
    assert row is not None  # the statement always returns its one row
    return row


GET_OPERATION = f"""
SELECT {OPERATION_COLUMNS} FROM {OPERATION_FROM} WHERE o.id = $1 AND o.tenant_id = $2
"""


async def get_operation(
    conn: Connection, operation_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(GET_OPERATION, operation_id, tenant_id)


# --- Holds ----------------------------------------------------------------------------

# A hold is its hold operation until that is applied (pending, or failed), then the row
# of `hold` the drain created (held, and then captured, voided or expired).
GET_HOLD = """
SELECT o.id, o.status AS operation_status, o.from_wallet_id, o.to_wallet_id, o.amount,
       o.currency, o.reference, o.expires_at, o.created_at,
       COALESCE(h.updated_at, o.completed_at, o.created_at) AS updated_at,
       h.status AS hold_status, h.captured_amount
FROM operation o LEFT JOIN hold h ON h.id = o.id
WHERE o.id = $1 AND o.tenant_id = $2 AND o.type = 'hold'
"""


async def get_hold(conn: Connection, hold_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(GET_HOLD, hold_id, tenant_id)


# --- Replenishment batches ------------------------------------------------------------

BATCH_COLUMNS = """
    b.id, b.total, b.created_at,
    count(*) FILTER (WHERE o.status = 'pending') AS pending,
    count(*) FILTER (WHERE o.status = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE o.status = 'failed') AS failed,
    max(o.completed_at) AS last_completed_at
"""

# A batch's counts are counted, not kept: they are exact at every moment, and no drain
# has to queue on a counter row.
GET_BATCH = f"""
SELECT {BATCH_COLUMNS}
FROM replenishment_batch b LEFT JOIN operation o ON o.batch_id = b.id
WHERE b.id = $1 AND b.tenant_id = $2
GROUP BY b.id
"""


async def get_batch(conn: Connection, batch_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(GET_BATCH, batch_id, tenant_id)


# One probe of the index of pending batch items, whatever the batch's size.
BATCH_HAS_PENDING = """
SELECT EXISTS (SELECT 1 FROM operation WHERE batch_id = $1 AND status = 'pending')
"""


async def batch_has_pending(conn: Connection, batch_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(BATCH_HAS_PENDING, batch_id))


BATCH_EXISTS = "SELECT 1 FROM replenishment_batch WHERE id = $1 AND tenant_id = $2"


async def batch_exists(conn: Connection, batch_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    return await conn.fetchval(BATCH_EXISTS, batch_id, tenant_id) is not None


# In the batch's order (its items were inserted in order, so seq follows it). Each row's
# `batch_offset` counts from the batch's first item, for the cursor: a global sequence
# number would tell every tenant how busy the whole installation is.
LIST_BATCH_OPERATIONS = f"""
WITH first AS (SELECT min(seq) AS seq FROM operation WHERE batch_id = $1)
SELECT {OPERATION_COLUMNS}, o.seq - first.seq + 1 AS batch_offset
FROM {OPERATION_FROM}, first
WHERE o.batch_id = $1 AND o.tenant_id = $2 AND ($3::bigint IS NULL OR o.seq > first.seq - 1 + $3)
ORDER BY o.seq
LIMIT $4
"""


async def list_batch_operations(
    conn: Connection,
    batch_id: uuid.UUID,
    tenant_id: uuid.UUID,
    after_offset: int | None,
    limit: int,
) -> list[Record]:
    return await conn.fetch(LIST_BATCH_OPERATIONS, batch_id, tenant_id, after_offset, limit)


INSERT_BATCH = """
INSERT INTO replenishment_batch (id, tenant_id, total) VALUES ($1, $2, $3)
"""


async def insert_batch(
    conn: Connection, batch_id: uuid.UUID, tenant_id: uuid.UUID, total: int
) -> None:
    await conn.execute(INSERT_BATCH, batch_id, tenant_id, total)


BATCH_OPERATION_COLUMNS = [
    "id",
    "tenant_id",
    "type",
    "amount",
    "currency",
    "wallet_id",
    "reference",
    "batch_id",
    "position",
    "request_id",
]


async def copy_batch_operations(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert with COPY, in the given order (which sets their seq)."""
    await conn.copy_records_to_table("operation", records=rows, columns=BATCH_OPERATION_COLUMNS)


# --- The backlog ----------------------------------------------------------------------

BACKLOG = """
SELECT (SELECT count(*) FROM operation WHERE status = 'pending') AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT created_at FROM operation WHERE status = 'pending' ORDER BY seq LIMIT 1
       )), 0)::float8 AS oldest_seconds
"""


async def backlog(conn: Connection) -> Record:
    """Pending operations, and how long the oldest has waited (all tenants)."""
    row = await conn.fetchrow(BACKLOG)
    assert row is not None
    return row


OLDEST_PENDING_SECONDS = """
SELECT COALESCE(EXTRACT(EPOCH FROM now() - (
    SELECT created_at FROM operation WHERE status = 'pending' ORDER BY seq LIMIT 1
)), 0)::float8
"""


async def oldest_pending_seconds(conn: Connection) -> float:
    """How long the oldest pending operation has waited (0 if none): one index probe."""
    return float(await conn.fetchval(OLDEST_PENDING_SECONDS))
