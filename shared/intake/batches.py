"""Accepting a replenishment batch: 1-10,000 replenishments, all or none.

The rule: a batch is accepted only whole. In one transaction, its idempotency record,
the batch and one replenishment per item, each at the next position of its wallet's
queue; if any item names a wallet the tenant does not have, nothing at all (a 422 naming
every such item). The transaction is opened here rather than by the request: it is what
makes the batch one thing, and the idempotency loop (`accept`) must be able to run it
again after a key expired under it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from shared.accounts import repository as accounts
from shared.asyncdb import Connection, Pool, Record
from shared.errors import FieldError, ValidationFailed
from shared.ids import uuid7
from shared.intake.admission import Admission, admit
from shared.intake.idempotency import Accepted, accept, insert_key, request_hash
from shared.operations import repository as operations
from shared.operations.replenishment import Replenishment


@dataclass(slots=True, frozen=True)
class BatchItem:
    wallet_id: uuid.UUID
    amount: int
    currency: str
    reference: str | None


def _batch_hash(items: list[BatchItem]) -> bytes:
    return request_hash(
        "replenishment_batch",
        {"items": [[str(i.wallet_id), i.amount, i.currency, i.reference] for i in items]},
    )


async def check_batch_wallets(
    conn: Connection, tenant_id: uuid.UUID, items: list[BatchItem]
) -> None:
    """Every item's wallet must be the tenant's; one query, whatever the batch size."""
    wanted = list({item.wallet_id for item in items})
    known = await accounts.tenant_wallet_ids(conn, wanted, tenant_id)
    missing = [
        FieldError(["body", "items", index, "wallet_id"], f"Wallet {item.wallet_id} not found")
        for index, item in enumerate(items)
        if item.wallet_id not in known
    ]
    if missing:
        raise ValidationFailed(
            missing, f"{len(missing)} item(s) name wallets that do not exist; nothing was accepted"
        )


async def validate_batch(pool: Pool, *, tenant_id: uuid.UUID, items: list[BatchItem]) -> None:
    async with pool.acquire() as conn:
        await check_batch_wallets(conn, tenant_id, items)


async def create_batch(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    items: list[BatchItem],
    request_id: str | None,
    admission: Admission | None = None,
) -> Accepted:
    digest = _batch_hash(items)
    admitted = await admit(pool, admission, tenant_id, idempotency_key, digest)
    if admitted is not None:
        return admitted
    async with pool.acquire() as conn:

        async def insert() -> Record | None:
            batch_id = uuid7()
            async with conn.transaction():
                if not await insert_key(
                    conn,
                    tenant_id=tenant_id,
                    key=idempotency_key,
                    request_hash=digest,
                    resource_type="replenishment_batch",
                    resource_id=batch_id,
                    status_code=202,
                ):
                    return None  # taken: nothing else was written
                await check_batch_wallets(conn, tenant_id, items)
                await operations.insert_batch(conn, batch_id, tenant_id, len(items))
                counts = Counter(item.wallet_id for item in items)
                next_position = await accounts.reserve_positions(conn, counts)
                rows = []
                for item in items:
                    next_position[item.wallet_id] += 1
                    rows.append(
                        (
                            uuid7(),
                            tenant_id,
                            Replenishment.name,
                            item.amount,
                            item.currency,
                            item.wallet_id,
                            item.reference,
                            batch_id,
                            next_position[item.wallet_id],
                            request_id,
                        )
                    )
                await operations.copy_batch_operations(conn, rows)
            return await operations.get_batch(conn, batch_id, tenant_id)

        # Bad wallets were refused inside the insert: a None is only ever a taken key.
        return await accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=202,
            insert=insert,
        )
