"""The rows a drain's operations name besides wallets: holds (of captures, voids and
expiries) and reversed operations (of reversals), read and locked, and written back
(psycopg2, bound parameters only)."""

from __future__ import annotations

import uuid

from shared.db import Cursor
from shared.ledger.repository import pg_array
from shared.operations.kind import HoldState, ReversedState

# The holds that captures, voids and expiries name: their hold operations (whose outcome
# and expiry decide whether the hold can still be captured), and the holds themselves,
# locked, where the hold operation succeeded.
HOLD_OPERATIONS = """
SELECT id, status, from_wallet_id, to_wallet_id, amount, expires_at
FROM operation WHERE id = ANY(%(ids)s::uuid[])
"""
LOCK_HOLDS = """
SELECT id, status, captured_amount FROM hold WHERE id = ANY(%(ids)s::uuid[])
ORDER BY id FOR NO KEY UPDATE
"""


def lock_holds(cur: Cursor, ids: list[uuid.UUID]) -> list[HoldState]:
    cur.execute(HOLD_OPERATIONS, {"ids": ids})
    operations = {row[0]: row for row in cur.fetchall()}
    cur.execute(LOCK_HOLDS, {"ids": sorted(ids)})
    holds = {row[0]: row for row in cur.fetchall()}
    return [
        HoldState(
            id=hold_id,
            operation_status=row[1],
            from_wallet_id=row[2],
            to_wallet_id=row[3],
            amount=row[4],
            expires_at=row[5],
            status=holds[hold_id][1] if hold_id in holds else None,
            captured_amount=holds[hold_id][2] if hold_id in holds else None,
        )
        for hold_id, row in operations.items()
    ]


INSERT_HOLDS = """
INSERT INTO hold (id, tenant_id, from_wallet_id, to_wallet_id, amount, expires_at)
SELECT o.id, o.tenant_id, o.from_wallet_id, o.to_wallet_id, o.amount, o.expires_at
FROM operation o WHERE o.id = ANY(%(ids)s::uuid[])
"""
UPDATE_HOLDS = """
UPDATE hold AS h
SET status = v.status, captured_amount = v.captured_amount, updated_at = now()
FROM unnest(%s::uuid[], %s::text[], %s::bigint[]) AS v (id, status, captured_amount)
WHERE h.id = v.id
"""


def insert_holds(cur: Cursor, ids: list[uuid.UUID]) -> None:
    """The holds of these hold operations, as they were accepted: held."""
    cur.execute(INSERT_HOLDS, {"ids": ids})


def update_holds(cur: Cursor, holds: list[HoldState]) -> None:
    columns = zip(*((h.id, h.status, h.captured_amount) for h in holds), strict=True)
    cur.execute(UPDATE_HOLDS, [pg_array(list(column)) for column in columns])


LOCK_REVERSED = """
SELECT id, amount, reversed_amount FROM operation WHERE id = ANY(%(ids)s::uuid[])
ORDER BY id FOR NO KEY UPDATE
"""
UPDATE_REVERSED = """
UPDATE operation AS o SET reversed_amount = v.reversed_amount
FROM unnest(%s::uuid[], %s::bigint[]) AS v (id, reversed_amount)
WHERE o.id = v.id
"""


def lock_reversed(cur: Cursor, ids: list[uuid.UUID]) -> list[ReversedState]:
    """The operations that reversals name, locked: their reversed amounts change."""
    cur.execute(LOCK_REVERSED, {"ids": sorted(ids)})
    return [ReversedState(*row) for row in cur.fetchall()]


def update_reversed(cur: Cursor, operations: list[ReversedState]) -> None:
    columns = zip(*((o.id, o.reversed_amount) for o in operations), strict=True)
    cur.execute(UPDATE_REVERSED, [pg_array(list(column)) for column in columns])
