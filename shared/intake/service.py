"""Accepting requests: accounts and money-moving operations, with idempotency.

Idempotency (per tenant, keys of 1-255 printable ASCII characters):

* The first request with a key inserts the idempotency record together with what it
  creates, in one statement. A request refused before that (any 4xx) leaves no record, so
  the key stays free for a corrected request.
* The same key and the same request (method, path and normalised body: "10.5" and
  "10.50" are the same amount) replays: the original status code and the resource as it is
  now, marked `replayed`. The same key with another request is refused.
* A concurrent duplicate waits for the first request's commit on the key's primary key,
  then replays; if it waits longer than the lock timeout it is told the key is in use.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shared.errors import IdempotencyKeyInUse, IdempotencyKeyReused, NotFound
from shared.ids import uuid7
from shared.intake import repository as repo
from shared.intake.repository import Record

Pool = asyncpg.Pool


@dataclass(slots=True, frozen=True)
class Accepted:
    """A created (or replayed) resource and the status code of its creation."""

    resource: Record
    status_code: int
    replayed: bool


def request_hash(method: str, path: str, body: dict[str, Any]) -> bytes:
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


async def _replay(
    conn: repo.Connection,
    tenant_id: uuid.UUID,
    key: str,
    digest: bytes,
) -> Accepted | None:
    record = await repo.idempotency_record(conn, tenant_id, key)
    if record is None:
        return None
    if record["request_hash"] != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key"
        )
    fetch: dict[str, Callable[[], Awaitable[Record | None]]] = {
        "account": lambda: repo.get_account(conn, record["resource_id"], tenant_id),
        "operation": lambda: repo.get_operation(conn, record["resource_id"], tenant_id),
    }
    resource = await fetch[record["resource_type"]]()
    assert resource is not None, "an idempotency record always names an existing resource"
    return Accepted(resource, record["status_code"], replayed=True)


async def _insert_once(
    conn: repo.Connection,
    insert: Callable[[], Awaitable[Record | None]],
) -> Record | None:
    try:
        return await insert()
    except asyncpg.LockNotAvailableError as exc:
        raise IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still being processed; retry shortly"
        ) from exc


async def create_account(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str | None,
    name: str,
    currency: str,
) -> Accepted:
    digest = request_hash("POST", "/v1/accounts", {"name": name, "currency": currency})
    async with pool.acquire() as conn:
        row = await _insert_once(
            conn,
            lambda: repo.create_account(
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
        if row is not None:
            return Accepted(row, 201, replayed=False)
        assert idempotency_key is not None, "without a key the account is always created"
        replay = await _replay(conn, tenant_id, idempotency_key, digest)
        assert replay is not None, "a conflicting key is committed before ON CONFLICT sees it"
        return replay


async def create_replenishment(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
) -> Accepted:
    digest = request_hash(
        "POST",
        f"/v1/wallets/{wallet_id}/replenishments",
        {"amount": amount, "currency": currency, "reference": reference},
    )
    async with pool.acquire() as conn:
        row = await _insert_once(
            conn,
            lambda: repo.create_replenishment(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                operation_id=uuid7(),
                wallet_id=wallet_id,
                amount=amount,
                currency=currency,
                reference=reference,
                request_id=request_id,
            ),
        )
        if row is not None:
            return Accepted(row, 202, replayed=False)
        replay = await _replay(conn, tenant_id, idempotency_key, digest)
        if replay is not None:
            return replay
        raise NotFound(f"Wallet {wallet_id} not found")


async def create_transfer(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    from_wallet_id: uuid.UUID,
    to_wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
) -> Accepted:
    digest = request_hash(
        "POST",
        "/v1/transfers",
        {
            "from_wallet_id": str(from_wallet_id),
            "to_wallet_id": str(to_wallet_id),
            "amount": amount,
            "currency": currency,
            "reference": reference,
        },
    )
    async with pool.acquire() as conn:
        row = await _insert_once(
            conn,
            lambda: repo.create_transfer(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                operation_id=uuid7(),
                from_wallet_id=from_wallet_id,
                to_wallet_id=to_wallet_id,
                amount=amount,
                currency=currency,
                reference=reference,
                request_id=request_id,
            ),
        )
        if row is not None:
            return Accepted(row, 202, replayed=False)
        replay = await _replay(conn, tenant_id, idempotency_key, digest)
        if replay is not None:
            return replay
        found = await repo.get_wallet(conn, from_wallet_id, tenant_id)
        missing = "to_wallet_id" if found is not None else "from_wallet_id"
        wallet = to_wallet_id if found is not None else from_wallet_id
        raise NotFound(f"Wallet {wallet} ({missing}) not found")
