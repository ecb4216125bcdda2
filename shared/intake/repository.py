"""The statements of the intake and of the API's reads (asyncpg, bound parameters only)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

Record = asyncpg.Record
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

ACCOUNT_COLUMNS = """
    a.id, a.name, a.created_at,
    w.id AS wallet_id, w.currency, w.balance, w.updated_at
"""

# An operation as the API shows it: its ledger transaction (if it succeeded) joined in.
OPERATION_COLUMNS = """
    o.id, o.type, o.status, o.amount, o.currency, o.wallet_id, o.from_wallet_id,
    o.to_wallet_id, o.reference, o.batch_id, t.id AS transaction_id, o.error_code,
    o.error_message, o.created_at, o.completed_at
"""
OPERATION_FROM = "operation o LEFT JOIN transaction t ON t.operation_id = o.id"
# What an insert returns: a new operation is pending and has no transaction yet.
NEW_OPERATION_COLUMNS = """
    id, type, status, amount, currency, wallet_id, from_wallet_id, to_wallet_id,
    reference, batch_id, NULL::uuid AS transaction_id, error_code, error_message, created_at,
    completed_at
"""

WALLET_COLUMNS = "id, account_id, currency, balance, updated_at"


# --- API keys -------------------------------------------------------------------------

TENANT_FOR_KEY = """
SELECT id, tenant_id, key_hash FROM api_key WHERE key_hash = $1 AND revoked_at IS NULL
"""


async def tenant_for_key_hash(conn: Connection, key_hash: bytes) -> Record | None:
    return await conn.fetchrow(TENANT_FOR_KEY, key_hash)


# --- Idempotency ----------------------------------------------------------------------

IDEMPOTENCY_RECORD = """
SELECT request_hash, resource_type, resource_id, status_code
FROM idempotency_key WHERE tenant_id = $1 AND key = $2
"""


async def key_in_flight(conn: Connection, tenant_id: uuid.UUID, key: str) -> bool:
    """Whether another transaction is inserting this key right now (probe, rolled back)."""
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '100ms'")
            await conn.execute(PROBE_KEY, tenant_id, key)
            raise _RollBack
    except asyncpg.LockNotAvailableError:
        return True
    except _RollBack:
        return False


class _RollBack(Exception):
    pass


PROBE_KEY = """
INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, resource_id,
                             status_code)
VALUES ($1, $2, '\\x', 'operation', '00000000-0000-0000-0000-000000000000', 0)
ON CONFLICT DO NOTHING
"""


async def idempotency_record(conn: Connection, tenant_id: uuid.UUID, key: str) -> Record | None:
    return await conn.fetchrow(IDEMPOTENCY_RECORD, tenant_id, key)


# --- Accounts -------------------------------------------------------------------------

# The account, its wallet and (if a key was given) the idempotency record, in one
# statement. With a key that is already taken, nothing is inserted and no row returns.
CREATE_ACCOUNT = """
WITH idem AS (
    INSERT INTO idempotency_key
        (tenant_id, key, request_hash, resource_type, resource_id, status_code)
    SELECT $1, $2, $3, 'account', $4, 201
    WHERE $2::text IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING resource_id
), a AS (
    INSERT INTO account (id, tenant_id, name)
    SELECT $4, $1, $5
    WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM idem)
    RETURNING id, name, created_at, tenant_id
), w AS (
    INSERT INTO wallet (id, account_id, tenant_id, currency)
    SELECT $6, a.id, a.tenant_id, $7 FROM a
    RETURNING id, currency, balance, updated_at
), queue AS (
    INSERT INTO wallet_sequence (wallet_id) SELECT id FROM w
)
SELECT a.id, a.name, a.created_at,
       w.id AS wallet_id, w.currency, w.balance, w.updated_at
FROM a, w
"""


async def create_account(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str | None,
    request_hash: bytes,
    account_id: uuid.UUID,
    name: str,
    wallet_id: uuid.UUID,
    currency: str,
) -> Record | None:
    return await conn.fetchrow(
        CREATE_ACCOUNT,
        tenant_id,
        idempotency_key,
        request_hash,
        account_id,
        name,
        wallet_id,
        currency,
    )


GET_ACCOUNT = f"""
SELECT {ACCOUNT_COLUMNS}
FROM account a JOIN wallet w ON w.account_id = a.id AND w.kind = 'user'
WHERE a.id = $1 AND a.tenant_id = $2
"""


async def get_account(
    conn: Connection, account_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(GET_ACCOUNT, account_id, tenant_id)


# Newest first, keyset-paginated on the id (UUIDv7: creation time, then random bits).
LIST_ACCOUNTS = f"""
SELECT {ACCOUNT_COLUMNS}
FROM account a JOIN wallet w ON w.account_id = a.id AND w.kind = 'user'
WHERE a.tenant_id = $1 AND ($2::uuid IS NULL OR a.id < $2)
ORDER BY a.id DESC
LIMIT $3
"""


async def list_accounts(
    conn: Connection, tenant_id: uuid.UUID, before: uuid.UUID | None, limit: int
) -> list[Record]:
    return await conn.fetch(LIST_ACCOUNTS, tenant_id, before, limit)


# --- Wallets --------------------------------------------------------------------------

GET_WALLET = f"""
SELECT {WALLET_COLUMNS} FROM wallet WHERE id = $1 AND tenant_id = $2
"""


async def get_wallet(conn: Connection, wallet_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(GET_WALLET, wallet_id, tenant_id)


# Newest first in the order they were applied: entry_no is the posting's position in its
# wallet, so postings written by one transaction still come in application order.
LIST_POSTINGS = """
SELECT p.id, p.entry_no, p.transaction_id, t.operation_id, t.type, p.amount, p.balance_after,
       p.created_at
FROM posting p JOIN transaction t ON t.id = p.transaction_id
WHERE p.wallet_id = $1 AND ($2::bigint IS NULL OR p.entry_no < $2)
ORDER BY p.entry_no DESC
LIMIT $3
"""


async def list_postings(
    conn: Connection, wallet_id: uuid.UUID, before_entry: int | None, limit: int
) -> list[Record]:
    return await conn.fetch(LIST_POSTINGS, wallet_id, before_entry, limit)


# --- Operations -----------------------------------------------------------------------

# Idempotency record and operation in one statement, only if every named wallet is the
# tenant's. The key's primary key makes a concurrent duplicate wait for the first
# request's commit and then insert nothing (ON CONFLICT DO NOTHING). The operation takes
# the next position in its wallet's queue under the wallet_sequence row lock, held until
# this statement commits: positions are in commit order.
CREATE_REPLENISHMENT = f"""
WITH target AS (
    SELECT id FROM wallet WHERE id = $3 AND tenant_id = $1
), idem AS (
    INSERT INTO idempotency_key
        (tenant_id, key, request_hash, resource_type, resource_id, status_code)
    SELECT $1, $2, $4, 'operation', $5, 202
    WHERE EXISTS (SELECT 1 FROM target)
    ON CONFLICT DO NOTHING
    RETURNING resource_id
), queue AS (
    UPDATE wallet_sequence SET last_position = last_position + 1
    WHERE wallet_id = $3 AND EXISTS (SELECT 1 FROM idem)
    RETURNING last_position
)
INSERT INTO operation
    (id, tenant_id, type, amount, currency, wallet_id, reference, idempotency_key, request_id,
     position)
SELECT idem.resource_id, $1, 'replenishment', $6, $7, $3, $8, $2, $9, queue.last_position
FROM idem LEFT JOIN queue ON true  -- no queue row: position NULL, refused
RETURNING {NEW_OPERATION_COLUMNS}
"""

CREATE_TRANSFER = f"""
WITH source AS (
    SELECT id FROM wallet WHERE id = $3 AND tenant_id = $1
), destination AS (
    SELECT id FROM wallet WHERE id = $4 AND tenant_id = $1
), idem AS (
    INSERT INTO idempotency_key
        (tenant_id, key, request_hash, resource_type, resource_id, status_code)
    SELECT $1, $2, $5, 'operation', $6, 202
    WHERE EXISTS (SELECT 1 FROM source) AND EXISTS (SELECT 1 FROM destination)
    ON CONFLICT DO NOTHING
    RETURNING resource_id
), queue AS (
    UPDATE wallet_sequence SET last_position = last_position + 1
    WHERE wallet_id = $3 AND EXISTS (SELECT 1 FROM idem)
    RETURNING last_position
)
INSERT INTO operation
    (id, tenant_id, type, amount, currency, from_wallet_id, to_wallet_id, reference,
     idempotency_key, request_id, position)
SELECT idem.resource_id, $1, 'transfer', $7, $8, $3, $4, $9, $2, $10, queue.last_position
FROM idem LEFT JOIN queue ON true  -- no queue row: position NULL, refused
RETURNING {NEW_OPERATION_COLUMNS}
"""


async def create_replenishment(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    request_hash: bytes,
    operation_id: uuid.UUID,
    wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
) -> Record | None:
    return await conn.fetchrow(
        CREATE_REPLENISHMENT,
        tenant_id,
        idempotency_key,
        wallet_id,
        request_hash,
        operation_id,
        amount,
        currency,
        reference,
        request_id,
    )


async def create_transfer(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    request_hash: bytes,
    operation_id: uuid.UUID,
    from_wallet_id: uuid.UUID,
    to_wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
) -> Record | None:
    return await conn.fetchrow(
        CREATE_TRANSFER,
        tenant_id,
        idempotency_key,
        from_wallet_id,
        to_wallet_id,
        request_hash,
        operation_id,
        amount,
        currency,
        reference,
        request_id,
    )


GET_OPERATION = f"""
SELECT {OPERATION_COLUMNS} FROM {OPERATION_FROM} WHERE o.id = $1 AND o.tenant_id = $2
"""


async def get_operation(
    conn: Connection, operation_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(GET_OPERATION, operation_id, tenant_id)


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


TENANT_WALLET_IDS = "SELECT id FROM wallet WHERE id = ANY($1::uuid[]) AND tenant_id = $2"


async def tenant_wallet_ids(
    conn: Connection, wallet_ids: list[uuid.UUID], tenant_id: uuid.UUID
) -> set[uuid.UUID]:
    """Which of these wallets the tenant has: one query for any number of wallets."""
    rows = await conn.fetch(TENANT_WALLET_IDS, wallet_ids, tenant_id)
    return {row["id"] for row in rows}


INSERT_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, resource_id, status_code)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING resource_id
"""


async def insert_idempotency_key(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    request_hash: bytes,
    resource_type: str,
    resource_id: uuid.UUID,
    status_code: int,
) -> bool:
    """False if the key is taken (after waiting for a concurrent holder to commit)."""
    inserted = await conn.fetchval(
        INSERT_IDEMPOTENCY_KEY,
        tenant_id,
        key,
        request_hash,
        resource_type,
        resource_id,
        status_code,
    )
    return inserted is not None


INSERT_BATCH = """
INSERT INTO replenishment_batch (id, tenant_id, total) VALUES ($1, $2, $3)
"""


async def insert_batch(
    conn: Connection, batch_id: uuid.UUID, tenant_id: uuid.UUID, total: int
) -> None:
    await conn.execute(INSERT_BATCH, batch_id, tenant_id, total)


# Reserving positions in many wallets' queues at once: their rows are locked in id order,
# so two batches naming the same wallets queue behind each other instead of deadlocking.
LOCK_WALLET_SEQUENCES = """
SELECT wallet_id, last_position FROM wallet_sequence
WHERE wallet_id = ANY($1::uuid[])
ORDER BY wallet_id
FOR UPDATE
"""
ADVANCE_WALLET_SEQUENCES = """
UPDATE wallet_sequence AS s SET last_position = v.last_position
FROM unnest($1::uuid[], $2::bigint[]) AS v (wallet_id, last_position)
WHERE s.wallet_id = v.wallet_id
"""


async def reserve_positions(conn: Connection, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    """Take `counts[w]` consecutive positions in each wallet's queue; return, per wallet,
    the last position before them. Runs inside the caller's transaction."""
    wallets = sorted(counts)
    rows = await conn.fetch(LOCK_WALLET_SEQUENCES, wallets)
    before = {row["wallet_id"]: row["last_position"] for row in rows}
    await conn.execute(ADVANCE_WALLET_SEQUENCES, wallets, [before[w] + counts[w] for w in wallets])
    return before


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


# --- Health ---------------------------------------------------------------------------


BACKLOG = """
SELECT (SELECT count(*) FROM operation WHERE status = 'pending') AS pending,
       COALESCE(EXTRACT(EPOCH FROM now() - (
           SELECT created_at FROM operation WHERE status = 'pending' ORDER BY seq LIMIT 1
       )), 0)::float8 AS oldest_seconds
"""


OLDEST_PENDING_SECONDS = """
SELECT COALESCE(EXTRACT(EPOCH FROM now() - (
    SELECT created_at FROM operation WHERE status = 'pending' ORDER BY seq LIMIT 1
)), 0)::float8
"""


async def oldest_pending_seconds(conn: Connection) -> float:
    """How long the oldest pending operation has waited (0 if none): one index probe."""
    return float(await conn.fetchval(OLDEST_PENDING_SECONDS))


async def backlog(conn: Connection) -> Record:
    """Pending operations, and how long the oldest has waited (all tenants)."""
    row = await conn.fetchrow(BACKLOG)
    assert row is not None
    return row


async def ping(conn: Connection) -> Any:
    return await conn.fetchval("SELECT 1")
