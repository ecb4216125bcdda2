"""The statements the ledger runs (psycopg2, synchronous, bound parameters only)."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Cursor
from shared.operations.kind import PendingOperation

# Namespace of the advisory locks that claim a wallet's queue (hashtextextended's seed).
CLAIM_LOCK_SEED = 0x70617973  # "pays"


@dataclass(slots=True)
class WalletState:
    id: uuid.UUID
    balance: int
    entry_count: int
    held: int = 0
    # The feed key of the last drain that locked it (see shared/events/outbox.py).
    event_xid: int | None = None


# Claim the queues of wallets with pending work. Look at the oldest pending operations (the
# head of the global queue) and, in order of each wallet's oldest operation, take a
# transaction-scoped advisory lock on wallets that no other drain holds, until about
# `budget` of the head's operations are covered. The lock is the wallet's queue claim:
# while it is held nobody else applies that wallet's operations, which is what keeps them
# serial and in order. COMMIT or ROLLBACK releases it, and so does the server when a
# killed worker's connection drops. Wallets another drain holds are skipped, so concurrent
# drains share the work.
#
# Per wallet, `seq` follows `position` (the intake draws seq after taking the wallet's
# sequence row lock), so a wallet's operations in the head are a prefix of its queue:
# `taken` of them are what this drain applies. At most `max_wallets` are claimed, which
# bounds the advisory locks one drain holds (PostgreSQL's lock table is shared and finite).
CLAIM_WALLETS = """
WITH head AS MATERIALIZED (
    SELECT queue_wallet_id, seq FROM operation
    WHERE status = 'pending'
    ORDER BY seq
    LIMIT %(scan)s
), candidates AS MATERIALIZED (
    SELECT queue_wallet_id AS wallet_id, count(*) AS taken,
           sum(count(*)) OVER (ORDER BY min(seq)) - count(*) AS before,
           row_number() OVER (ORDER BY min(seq)) AS rank
    FROM head GROUP BY queue_wallet_id
)
SELECT wallet_id, taken,
       CASE WHEN before < %(budget)s AND rank <= %(max_wallets)s
            THEN pg_try_advisory_xact_lock(hashtextextended(wallet_id::text, %(seed)s))
            ELSE false END AS claimed
FROM candidates
"""
MAX_WALLETS_PER_DRAIN = 500

# When every wallet at the head is claimed by other drains (a hot wallet's backlog, a big
# batch being applied), look past the head: walk the distinct wallets that have pending
# work, one index probe each, from a random point, and claim the free ones. Without this a
# single busy wallet at the head would leave every other drain idle behind it.
CLAIM_BEYOND_HEAD = """
WITH RECURSIVE walk (wallet_id, steps) AS (
    (SELECT queue_wallet_id, 1 FROM operation
     WHERE status = 'pending' AND queue_wallet_id >= %(start)s AND queue_wallet_id < %(stop)s
     ORDER BY queue_wallet_id LIMIT 1)
    UNION ALL
    SELECT (SELECT o.queue_wallet_id FROM operation o
            WHERE o.status = 'pending' AND o.queue_wallet_id > walk.wallet_id
              AND o.queue_wallet_id < %(stop)s
            ORDER BY o.queue_wallet_id LIMIT 1),
           walk.steps + 1
    FROM walk
    WHERE walk.wallet_id IS NOT NULL AND walk.steps < %(max_steps)s
)
SELECT wallet_id FROM walk
WHERE wallet_id IS NOT NULL
  AND pg_try_advisory_xact_lock(hashtextextended(wallet_id::text, %(seed)s))
LIMIT %(max_wallets)s
"""
BEYOND_HEAD_STEPS = 2000


def claim_wallets(cur: Cursor, budget: int) -> dict[uuid.UUID, int]:
    """Claimed wallets, and how many of each one's operations to apply."""
    cur.execute(
        CLAIM_WALLETS,
        {
            "scan": 2 * budget,
            "budget": budget,
            "seed": CLAIM_LOCK_SEED,
            "max_wallets": MAX_WALLETS_PER_DRAIN,
        },
    )
    rows = cur.fetchall()
    claimed = {row[0]: row[1] for row in rows if row[2]}
    if claimed or not rows:  # claimed something, or nothing is pending at all
        return claimed
    wallets: list[uuid.UUID] = []
    middle = uuid.uuid4()  # from a random point to the end, then wrap around to it
    for start, stop in ((middle, uuid.UUID(int=2**128 - 1)), (uuid.UUID(int=0), middle)):
        cur.execute(
            CLAIM_BEYOND_HEAD,
            {
                "start": start,
                "stop": stop,
                "seed": CLAIM_LOCK_SEED,
                "max_steps": BEYOND_HEAD_STEPS,
                "max_wallets": MAX_WALLETS_PER_DRAIN - len(wallets),
            },
        )
        wallets += [row[0] for row in cur.fetchall()]
        if len(wallets) >= MAX_WALLETS_PER_DRAIN:
            break
    share = max(1, budget // max(1, len(wallets)))
    return dict.fromkeys(wallets, share)


# The first `taken` pending operations of each claimed wallet, in queue order. Read after
# the claim, so this snapshot sees every commit of the wallet's previous claimant.
PENDING_OPERATIONS = """
SELECT o.id, o.type, o.amount, o.wallet_id, o.from_wallet_id, o.to_wallet_id, o.batch_id,
       o.queue_wallet_id, o.seq, o.created_at, o.tenant_id, o.request_id, o.hold_id,
       o.reverses_operation_id, o.expires_at, o.currency, o.reference
FROM unnest(%(wallets)s::uuid[], %(taken)s::int[]) AS claimed (wallet_id, taken)
CROSS JOIN LATERAL (
    SELECT * FROM operation
    WHERE status = 'pending' AND queue_wallet_id = claimed.wallet_id
    ORDER BY position
    LIMIT claimed.taken
) o
"""


def pending_operations(cur: Cursor, claimed: dict[uuid.UUID, int]) -> list[PendingOperation]:
    """Pending operations of the claimed wallets: each wallet's in position order."""
    wallets = list(claimed)
    cur.execute(PENDING_OPERATIONS, {"wallets": wallets, "taken": [claimed[w] for w in wallets]})
    return [PendingOperation(*row) for row in cur.fetchall()]


# Balance rows are locked in ascending id order, all in one statement: two drains that
# share wallets queue one behind the other instead of deadlocking. NO KEY UPDATE (what an
# UPDATE of the balance takes anyway) does not block the KEY SHARE locks of the foreign
# key checks made by the intake, so accepting operations never waits on a drain.
LOCK_WALLETS = """
SELECT id, balance, entry_count, held, event_xid::text::bigint FROM wallet
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


def _copy(cur: Cursor, table: str, columns: str, rows: list[tuple[object, ...]]) -> None:
    """COPY rows in (text format): far cheaper than a multi-row INSERT to build and parse.
    Values are UUIDs, integers and fixed words: nothing that needs escaping."""
    buffer = io.StringIO("".join("\t".join(map(str, row)) + "\n" for row in rows))
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)


def insert_transactions(cur: Cursor, rows: list[tuple[uuid.UUID, uuid.UUID, str]]) -> None:
    _copy(cur, "transaction", "id, operation_id, type", rows)  # type: ignore[arg-type]


PostingRow = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int, int, int]


def insert_postings(cur: Cursor, rows: list[PostingRow]) -> None:
    # One statement for all of them: the double-entry trigger checks per statement.
    _copy(
        cur,
        "posting",
        "id, transaction_id, wallet_id, entry_no, amount, balance_after",
        rows,  # type: ignore[arg-type]
    )


def pg_array(values: list[object]) -> str:
    """A PostgreSQL array literal: every element quoted, NULL for None."""

    def element(value: object) -> str:
        if value is None:
            return "NULL"
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    return "{" + ",".join(map(element, values)) + "}"


UPDATE_WALLETS = """
UPDATE wallet AS w
SET balance = v.balance, entry_count = v.entry_count, held = v.held, updated_at = now(),
    event_xid = CASE WHEN w.kind = 'user' THEN %s::text::xid8 END
FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::bigint[])
    AS v (id, balance, entry_count, held)
WHERE w.id = v.id
"""


def update_wallets(cur: Cursor, wallets: list[WalletState], event_xid: int) -> None:
    """Write the wallets' new balances, and the drain's feed key on the user wallets."""
    columns = zip(*((w.id, w.balance, w.entry_count, w.held) for w in wallets), strict=True)
    cur.execute(UPDATE_WALLETS, [str(event_xid), *(pg_array(list(c)) for c in columns)])


# The wallets a drain locked without changing them (their operations failed) still carry
# its feed key: the next drain to touch them must come after it in the feed.
MARK_WALLETS = """
UPDATE wallet SET event_xid = %s::text::xid8
WHERE id = ANY(%s::uuid[]) AND event_xid IS DISTINCT FROM %s::text::xid8
"""


def mark_wallets(cur: Cursor, ids: list[uuid.UUID], event_xid: int) -> None:
    cur.execute(MARK_WALLETS, [str(event_xid), ids, str(event_xid)])


# The drain's feed key: its transaction's id (assigned by the row locks it took), or
# later than the key of any drain that locked one of its wallets before. And the
# transaction's time, which its operations' `completed_at` will be.
CURRENT_XID = "SELECT pg_current_xact_id()::text::bigint, now()"


def event_key(cur: Cursor, wallets: list[WalletState]) -> tuple[int, datetime]:
    cur.execute(CURRENT_XID)
    row = cur.fetchone()
    assert row is not None
    key = max([int(row[0])] + [w.event_xid for w in wallets if w.event_xid is not None])
    return key, row[1]


OutcomeRow = tuple[uuid.UUID, str, str | None, str | None]

COMPLETE_OPERATIONS = """
UPDATE operation AS o
SET status = v.status, error_code = v.error_code, error_message = v.error_message,
    completed_at = now()
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[])
    AS v (id, status, error_code, error_message)
WHERE o.id = v.id AND o.status = 'pending'
"""


def complete_operations(cur: Cursor, rows: list[OutcomeRow]) -> int:
    columns = [pg_array(list(column)) for column in zip(*rows, strict=True)]
    cur.execute(COMPLETE_OPERATIONS, columns)
    return int(cur.rowcount)
