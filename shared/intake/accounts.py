"""Accepting an account: the account, its wallet and its queue counter, in one statement,
with the idempotency record if the request has a key (optional for accounts)."""

from __future__ import annotations

import uuid

from shared.accounts import repository as accounts
from shared.asyncdb import Pool
from shared.ids import uuid7
from shared.intake.idempotency import Accepted, accept, request_hash


async def create_account(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str | None,
    name: str,
    currency: str,
) -> Accepted:
    digest = request_hash("account", {"name": name, "currency": currency})
    async with pool.acquire() as conn:
        return await accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=201,
            insert=lambda: accounts.create_account(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                account_id=uuid7(),
                name=name,
                wallet_id=uuid7(),
                currency=currency,
            ),
        )
