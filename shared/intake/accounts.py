"""Accepting an account: the account, its wallet and its queue counter, in one statement,
with the idempotency record if the request has a key (optional for accounts), and its
`account.created` event in the same transaction."""

from __future__ import annotations

import uuid

from shared.accounts import repository as accounts
from shared.asyncdb import Pool, Record
from shared.events import ACCOUNT_CREATED
from shared.events import repository as events
from shared.ids import uuid7
from shared.intake.idempotency import Accepted, accept, request_hash
from shared.resources import serialize


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

        async def insert() -> Record | None:
            # The intake holds this transaction (not the request): the account and its
            # event commit together, and a replay of the key reads outside it.
            async with conn.transaction():
                row = await accounts.create_account(
                    conn,
                    tenant_id=tenant_id,
                    idempotency_key=idempotency_key,
                    request_hash=digest,
                    account_id=uuid7(),
                    name=name,
                    wallet_id=uuid7(),
                    currency=currency,
                )
                if row is not None:
                    model = serialize.account(row)
                    data = model.__pydantic_serializer__.to_json(model)
                    await events.insert_event(conn, uuid7(), tenant_id, ACCOUNT_CREATED, data)
                return row

        return await accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=201,
            insert=insert,
        )
