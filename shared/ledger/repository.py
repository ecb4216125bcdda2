"""The statements the ledger runs (psycopg2, synchronous, bound parameters only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from psycopg2.extras import execute_values

from shared.db import Cursor

# Namespace of the advisory locks that claim a wallet's queue (hashtextextended's seed).
CLAIM_LOCK_SEED = 0x70617973  # "pays"


@dataclass(slots=True)
class PendingOperation:
    id: uuid.UUID
    type: str
    amount: int
    wallet_id: uuid.UUID | None
    from_wallet_id: uuid.UUID | None
    to_wallet_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    queue_wallet_id: uuid.UUID
    seq: int


@dataclass(slots=True)
class WalletState:
    id: uuid.UUID
    balance: int
    entry_count: int


# Claim the queues of wallets with pending work: look at the oldest pending operations,
# and take a transaction-scoped advisory lock on each of their wallets that no other
# drain holds. The lock is the wallet's queue claim: while it is held, nobody else applies
# that wallet's operations, which is what keeps them serial and in order. It is released
# by COMMIT or ROLLBACK, or by the server when a killed worker's connection drops.
CLAIM_WALLETS = """
WITH head AS MATERIALIZED (
    SELECT queue_wallet_id, seq FROM operation
    WHERE status = 'pending'
    ORDER BY seq
    LIMIT %(scan)s
), candidates AS MATERIALIZED (
    SELECT queue_wallet_id AS wallet_id, min(seq) AS first_seq
    FROM head GROUP BY queue_wallet_id
)
SELECT wallet_id FROM candidates
WHERE pg_try_advisory_xact_lock(hashtextextended(wallet_id::text, %(seed)s))
ORDER BY first_seq
"""


def claim_wallets(cur: Cursor, scan: int) -> list[uuid.UUID]:
    cur.execute(CLAIM_WALLETS, {"scan": scan, "seed": CLAIM_LOCK_SEED})
    return [row[0] for row in cur.fetchall()]


# The first `per_wallet` pending operations of each claimed wallet, in queue order. Read
# after the claim, so this snapshot sees every commit of the wallet's previous claimant.
PENDING_OPERATIONS = """
SELECT o.id, o.type, o.amount, o.wallet_id, o.from_wallet_id, o.to_wallet_id, o.batch_id,
       o.queue_wallet_id, o.seq
FROM unnest(%(wallets)s::uuid[]) AS claimed (wallet_id)
CROSS JOIN LATERAL (
    SELECT * FROM operation
    WHERE status = 'pending' AND queue_wallet_id = claimed.wallet_id
    ORDER BY position
    LIMIT %(per_wallet)s
) o
"""


def pending_operations(
    cur: Cursor, wallets: list[uuid.UUID], per_wallet: int
) -> list[PendingOperation]:
    """Pending operations of the claimed wallets: each wallet's in position order."""
    cur.execute(PENDING_OPERATIONS, {"wallets": wallets, "per_wallet": per_wallet})
    return [PendingOperation(*row) for row in cur.fetchall()]


# Balance rows are locked in ascending id order, all in one statement: two drains that
# share wallets queue one behind the other instead of deadlocking. NO KEY UPDATE (what an
# UPDATE of the balance takes anyway) does not block the KEY SHARE locks of the foreign
# key checks made by the intake, so accepting operations never waits on a drain.
LOCK_WALLETS = """
SELECT id, balance, entry_count FROM wallet
WHERE id = ANY(%(ids)s::uuid[]) AND kind = 'user'
ORDER BY id
FOR NO KEY UPDATE
"""


def lock_wallets(cur: Cursor, ids: list[uuid.UUID]) -> dict[uuid.UUID, WalletState]:
    cur.execute(LOCK_WALLETS, {"ids": sorted(ids)})
    return {row[0]: WalletState(*row) for row in cur.fetchall()}


# Replenishments are balanced against one of several funding wallets, whichever is free:
# one row that every replenishment updated would serialise all drains. Taken before any
# user wallet, and never while holding one, so it cannot join a deadlock.
LOCK_FREE_FUNDING_WALLET = """
SELECT id, balance, entry_count FROM wallet
WHERE kind = 'funding'
ORDER BY random()
LIMIT 1
FOR NO KEY UPDATE SKIP LOCKED
"""
LOCK_ANY_FUNDING_WALLET = """
SELECT id, balance, entry_count FROM wallet
WHERE kind = 'funding'
ORDER BY random()
LIMIT 1
FOR NO KEY UPDATE
"""


def lock_funding_wallet(cur: Cursor) -> WalletState:
    cur.execute(LOCK_FREE_FUNDING_WALLET)
    row = cur.fetchone()
    if row is None:  # every funding wallet is busy: wait for one
        cur.execute(LOCK_ANY_FUNDING_WALLET)
        row = cur.fetchone()
    if row is None:
        raise RuntimeError("the schema has no funding wallet; run `paysys migrate`")
    return WalletState(*row)


def insert_transactions(cur: Cursor, rows: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    execute_values(
        cur,
        "INSERT INTO transaction (id, operation_id, type) VALUES %s",
        rows,
        page_size=len(rows),
    )


PostingRow = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int, int, int]


def insert_postings(cur: Cursor, rows: list[PostingRow]) -> None:
    # One statement for all of them: the double-entry trigger checks per statement.
    execute_values(
        cur,
        "INSERT INTO posting (id, transaction_id, wallet_id, entry_no, amount, balance_after)"
        " VALUES %s",
        rows,
        page_size=len(rows),
    )


def update_wallets(cur: Cursor, rows: list[tuple[uuid.UUID, int, int]]) -> None:
    execute_values(
        cur,
        """
        UPDATE wallet AS w
        SET balance = v.balance, entry_count = v.entry_count, updated_at = now()
        FROM (VALUES %s) AS v (id, balance, entry_count)
        WHERE w.id = v.id
        """,
        rows,
        template="(%s::uuid, %s::bigint, %s::bigint)",
        page_size=len(rows),
    )


OutcomeRow = tuple[uuid.UUID, str, uuid.UUID | None, str | None, str | None]


def complete_operations(cur: Cursor, rows: list[OutcomeRow]) -> int:
    execute_values(
        cur,
        """
        UPDATE operation AS o
        SET status = v.status, transaction_id = v.transaction_id,
            error_code = v.error_code, error_message = v.error_message, completed_at = now()
        FROM (VALUES %s) AS v (id, status, transaction_id, error_code, error_message)
        WHERE o.id = v.id AND o.status = 'pending'
        """,
        rows,
        template="(%s::uuid, %s::text, %s::uuid, %s::text, %s::text)",
        page_size=len(rows),
    )
    return int(cur.rowcount)


PENDING_OLDER_THAN = """
SELECT EXISTS (
    SELECT 1 FROM operation
    WHERE status = 'pending' AND created_at < now() - make_interval(secs => %(age)s)
)
"""


def pending_older_than(cur: Cursor, age_seconds: float) -> bool:
    cur.execute(PENDING_OLDER_THAN, {"age": age_seconds})
    row = cur.fetchone()
    return bool(row and row[0])


DELETE_EXPIRED_IDEMPOTENCY_KEYS = """
DELETE FROM idempotency_key
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_key
    WHERE created_at < now() - make_interval(hours => %(hours)s)
    LIMIT %(limit)s
))
"""


def delete_expired_idempotency_keys(cur: Cursor, retention_hours: int, limit: int) -> int:
    cur.execute(DELETE_EXPIRED_IDEMPOTENCY_KEYS, {"hours": retention_hours, "limit": limit})
    return int(cur.rowcount)
