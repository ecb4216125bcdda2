"""Statements on accounts, wallets and wallets' queue counters (asyncpg, bound parameters
only). Balances are written by the ledger alone (`shared.ledger.repository`)."""

from __future__ import annotations

import uuid

from shared.asyncdb import Connection, Record

ACCOUNT_COLUMNS = """
    a.id, a.name, a.created_at,
    w.id AS wallet_id, w.currency, w.balance, w.held, w.updated_at
"""
WALLET_COLUMNS = "id, account_id, currency, balance, held, updated_at"

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
    RETURNING id, currency, balance, held, updated_at
), queue AS (
    INSERT INTO wallet_sequence (wallet_id) SELECT id FROM w
)
SELECT a.id, a.name, a.created_at,
       w.id AS wallet_id, w.currency, w.balance, w.held, w.updated_at
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


GET_WALLET = f"""
SELECT {WALLET_COLUMNS} FROM wallet WHERE id = $1 AND tenant_id = $2
"""


async def get_wallet(conn: Connection, wallet_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(GET_WALLET, wallet_id, tenant_id)


TENANT_WALLET_IDS = "SELECT id FROM wallet WHERE id = ANY($1::uuid[]) AND tenant_id = $2"


async def tenant_wallet_ids(
    conn: Connection, wallet_ids: list[uuid.UUID], tenant_id: uuid.UUID
) -> set[uuid.UUID]:
    """Which of these wallets the tenant has: one query for any number of wallets."""
    rows = await conn.fetch(TENANT_WALLET_IDS, wallet_ids, tenant_id)
    return {row["id"] for row in rows}


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
