"""Accepting one operation, of any kind (see `shared.operations`).

The rule: an operation is accepted (202) only once it is recorded, with its idempotency
key, at the next position of its queue wallet; every wallet it names must be the
tenant's (404 otherwise, as if it did not exist), and whatever its kind refuses without
the database (`Kind.refuse`) is refused only after the wallets were found, so that a
missing wallet is always a 404 first. One statement records it; the statement also says
why it refused, so that nothing is asked twice.
"""

from __future__ import annotations

import uuid

from shared.accounts import repository as accounts
from shared.asyncdb import Connection, Record
from shared.errors import NotFound, PaysysError
from shared.ids import uuid7
from shared.intake.admission import Admission, admit
from shared.intake.idempotency import Accepted, accept, request_hash
from shared.intake.lanes import WalletLanes
from shared.operations import KINDS
from shared.operations import repository as operations
from shared.operations.kind import NewOperation


async def accept_operation(
    lanes: WalletLanes,
    new: NewOperation,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    request_id: str | None,
    admission: Admission | None = None,
) -> Accepted:
    digest = request_hash(new.kind, new.meaning())
    admitted = await admit(lanes.pool, admission, tenant_id, idempotency_key, digest)
    if admitted is not None:
        return admitted
    refusal = KINDS[new.kind].refuse(new)
    if refusal is not None:
        async with lanes.pool.acquire() as conn:
            found = await accounts.tenant_wallet_ids(conn, new.named_wallets, tenant_id)
        raise _missing(new, found) or refusal

    async def work(conn: Connection) -> Accepted:
        found: list[uuid.UUID] = []

        async def insert() -> Record | None:
            row = await operations.create_operation(
                conn,
                new,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                operation_id=uuid7(),
                request_id=request_id,
            )
            found[:] = row["found_wallets"]
            return row if row["id"] is not None else None

        return await accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=202,
            insert=insert,
            why_not=lambda: _missing(new, set(found)),
        )

    return await lanes.run(tenant_id, new.queue_wallet_id, work)


def _missing(new: NewOperation, found: set[uuid.UUID]) -> PaysysError | None:
    """A 404 naming the first wallet of the request that the tenant does not have."""
    for field in ("wallet_id", "from_wallet_id", "to_wallet_id"):
        wallet_id = getattr(new, field)
        if wallet_id is not None and wallet_id not in found:
            if field == "wallet_id":
                return NotFound(f"Wallet {wallet_id} not found")
            return NotFound(f"Wallet {wallet_id} ({field}) not found")
    return None
