"""The console's reads of the ledger that the API's repositories do not already have
(asyncpg, bound parameters only).

The rules every statement here keeps:

* It is scoped to the tenant: every row it returns is the tenant's, and another tenant's
  id finds nothing (the page answers 404, exactly as the API would).
* It is an index range, bounded by a LIMIT: no count and no scan grows with the size of
  the ledger. Pages are keysets; a cursor's "no bound yet" is a value beyond every key
  rather than `$n IS NULL OR ...`, which a generic plan could not use as an index bound.
* The funding side is never named: a posting of a funding wallet comes without its wallet
  id and balance.
"""

from __future__ import annotations

import uuid

from shared.asyncdb import Connection, Record
from shared.operations.repository import OPERATION_COLUMNS, OPERATION_FROM

MAX_UUID = uuid.UUID(int=(1 << 128) - 1)
MAX_BIGINT = (1 << 63) - 1

TENANT_NAME = "SELECT name FROM tenant WHERE id = $1"


async def tenant_name(conn: Connection, tenant_id: uuid.UUID) -> str:
    return str(await conn.fetchval(TENANT_NAME, tenant_id) or "")


# --- Finding things --------------------------------------------------------------------

# Accounts whose lowercased name starts with the prefix ($2 <= name < $3), in name order;
# `ix_account_tenant_id_lower_name_id` is this ORDER BY, the bounds a range of it.
SEARCH_ACCOUNTS = """
SELECT a.id, a.name, a.created_at, w.id AS wallet_id, w.currency, w.balance, w.held,
       w.updated_at, lower(a.name) COLLATE "C" AS sort_name
FROM account a JOIN wallet w ON w.account_id = a.id AND w.kind = 'user'
WHERE a.tenant_id = $1
  AND lower(a.name) COLLATE "C" >= $2 AND lower(a.name) COLLATE "C" < $3
  AND (lower(a.name) COLLATE "C", a.id) > ($4, $5)
ORDER BY lower(a.name) COLLATE "C", a.id
LIMIT $6
"""


async def search_accounts(
    conn: Connection,
    tenant_id: uuid.UUID,
    prefix: str,
    after: tuple[str, uuid.UUID] | None,
    limit: int,
) -> list[Record]:
    """Accounts whose name starts with `prefix` (lowercase), after `after` (name, id)."""
    # Every name that starts with the prefix sorts below prefix + the last code point.
    upper = prefix + "\U0010ffff"
    start = after or (prefix, uuid.UUID(int=0))
    return await conn.fetch(SEARCH_ACCOUNTS, tenant_id, prefix, upper, start[0], start[1], limit)


# What an id names, for the search box: one index probe per kind, the first that matches.
FIND_ID = """
SELECT 'wallet' AS kind, id FROM wallet WHERE id = $1 AND tenant_id = $2
UNION ALL
SELECT 'wallet', id FROM wallet WHERE account_id = $1 AND tenant_id = $2 AND kind = 'user'
UNION ALL
SELECT 'operation', id FROM operation WHERE id = $1 AND tenant_id = $2
UNION ALL
SELECT 'operation', operation_id FROM transaction t
WHERE id = $1 AND (SELECT tenant_id FROM operation WHERE id = t.operation_id) = $2
UNION ALL
SELECT 'batch', id FROM replenishment_batch WHERE id = $1 AND tenant_id = $2
UNION ALL
SELECT 'event', id FROM event WHERE id = $1 AND tenant_id = $2
UNION ALL
SELECT 'webhook', id FROM webhook_endpoint
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
LIMIT 1
"""


async def find_id(conn: Connection, any_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    """(kind, id of the page to show) for an account, wallet, operation, transaction,
    batch, event or webhook endpoint id of the tenant; None for anything else."""
    return await conn.fetchrow(FIND_ID, any_id, tenant_id)


# --- Wallets ----------------------------------------------------------------------------

WALLET = """
SELECT w.id, w.account_id, w.currency, w.balance, w.held, w.updated_at, w.created_at,
       a.name AS account_name, a.created_at AS account_created_at
FROM wallet w JOIN account a ON a.id = w.account_id
WHERE w.id = $1 AND w.tenant_id = $2 AND w.kind = 'user'
"""


async def wallet(conn: Connection, wallet_id: uuid.UUID, tenant_id: uuid.UUID) -> Record | None:
    return await conn.fetchrow(WALLET, wallet_id, tenant_id)


# The wallet's active holds, soonest to expire first (`ix_hold_held_from_wallet_id`).
ACTIVE_HOLDS = """
SELECT id, to_wallet_id, amount, expires_at, created_at FROM hold
WHERE from_wallet_id = $1 AND tenant_id = $2 AND status = 'held'
ORDER BY expires_at, id
LIMIT $3
"""


async def active_holds(
    conn: Connection, wallet_id: uuid.UUID, tenant_id: uuid.UUID, limit: int
) -> list[Record]:
    return await conn.fetch(ACTIVE_HOLDS, wallet_id, tenant_id, limit)


# The operations in the wallet's queue (what it was asked to do: its top-ups, withdrawals,
# transfers and holds out of it; failed ones too, which have no postings), newest first:
# `uq_operation_queue_wallet_id_position` backwards.
QUEUED_OPERATIONS = f"""
SELECT {OPERATION_COLUMNS}, o.position
FROM {OPERATION_FROM}
WHERE o.queue_wallet_id = $1 AND o.tenant_id = $2 AND o.position < $3
ORDER BY o.position DESC
LIMIT $4
"""


async def queued_operations(
    conn: Connection,
    wallet_id: uuid.UUID,
    tenant_id: uuid.UUID,
    before_position: int | None,
    limit: int,
) -> list[Record]:
    before = MAX_BIGINT if before_position is None else before_position
    return await conn.fetch(QUEUED_OPERATIONS, wallet_id, tenant_id, before, limit)


# --- Operations -------------------------------------------------------------------------

# A succeeded operation's postings, debits first. A leg of a wallet that is not the
# tenant's is the funding side's: its wallet and balance stay unnamed.
TRANSACTION_POSTINGS = """
SELECT p.id, p.entry_no, p.amount, p.created_at,
       CASE WHEN w.tenant_id = $2 THEN p.wallet_id END AS wallet_id,
       CASE WHEN w.tenant_id = $2 THEN p.balance_after END AS balance_after,
       CASE WHEN w.tenant_id = $2 THEN a.name END AS account_name
FROM transaction t
JOIN operation o ON o.id = t.operation_id AND o.tenant_id = $2
JOIN posting p ON p.transaction_id = t.id
JOIN wallet w ON w.id = p.wallet_id
JOIN account a ON a.id = w.account_id
WHERE t.id = $1
ORDER BY p.amount, p.id
"""


async def transaction_postings(
    conn: Connection, transaction_id: uuid.UUID, tenant_id: uuid.UUID
) -> list[Record]:
    return await conn.fetch(TRANSACTION_POSTINGS, transaction_id, tenant_id)


# What names this operation: its reversals, or (a hold) its capture, void and expiry.
# Two partial indexes (`ix_operation_reverses_operation_id`, `ix_operation_hold_id`), one
# branch each, sorted after: an OR of the two, or an ORDER BY id inside a branch, would
# leave the planner free to walk the tenant's operations by id looking for them.
RELATED_OPERATIONS = f"""
SELECT * FROM (
    SELECT {OPERATION_COLUMNS} FROM {OPERATION_FROM}
    WHERE o.reverses_operation_id = $1 AND o.tenant_id = $2
    UNION ALL
    SELECT {OPERATION_COLUMNS} FROM {OPERATION_FROM}
    WHERE o.hold_id = $1 AND o.tenant_id = $2
) related
ORDER BY id
LIMIT $3
"""


async def related_operations(
    conn: Connection, operation_id: uuid.UUID, tenant_id: uuid.UUID, limit: int
) -> list[Record]:
    return await conn.fetch(RELATED_OPERATIONS, operation_id, tenant_id, limit)


# The account names of wallets, to show a wallet by its owner's name; a subquery per id,
# as above. Funding wallets have no tenant, so they are never named.
WALLET_NAMES = """
SELECT wanted.id, (SELECT a.name FROM wallet w JOIN account a ON a.id = w.account_id
                   WHERE w.id = wanted.id AND w.tenant_id = $2) AS name
FROM unnest($1::uuid[]) AS wanted (id)
"""


async def wallet_names(
    conn: Connection, rows: list[Record], tenant_id: uuid.UUID
) -> dict[uuid.UUID, str]:
    """The names of the wallets these operations name."""
    ids = sorted(
        {r[c] for r in rows for c in ("wallet_id", "from_wallet_id", "to_wallet_id") if r[c]}
    )
    if not ids:
        return {}
    found = await conn.fetch(WALLET_NAMES, ids, tenant_id)
    return {row["id"]: row["name"] for row in found if row["name"] is not None}
