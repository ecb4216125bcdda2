"""The API's reads of the ledger (asyncpg): a wallet's statement."""

from __future__ import annotations

import uuid

from shared.asyncdb import Connection, Record

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
