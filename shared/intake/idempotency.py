"""Idempotency: each key names one request and the one resource it created.

Per tenant, keys of 1-255 printable ASCII characters:

* The first request with a key inserts the idempotency record together with what it
  creates, in one statement (or one transaction). A request refused before that (any 4xx)
  leaves no record, so the key stays free for a corrected request.
* The same key and the same request replays: the original status code and the resource
  as it is now, marked `replayed`. "The same request" is the same meaning, hashed from
  what the request asks (its kind and its fields, amounts normalised: "10.5" and "10.50"
  are one amount), not from the route it came by. The same key with another request is
  refused (`idempotency_key_reused`).
* A concurrent duplicate waits for the first request's commit on the key's primary key,
  then replays; if it waits longer than the lock timeout it is told the key is in use
  (409). A wait on a busy wallet's queue that times out is a 503: retry, same key.

The `idempotency_key` table's statements are here too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shared.accounts import repository as accounts
from shared.asyncdb import Connection, Record
from shared.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PaysysError,
    ServiceUnavailable,
)
from shared.operations import repository as operations


@dataclass(slots=True, frozen=True)
class Accepted:
    """A created (or replayed) resource and the status code of its creation."""

    resource: Record
    status_code: int
    replayed: bool


def request_hash(kind: str, meaning: dict[str, Any]) -> bytes:
    """The digest of what a request means: its kind of resource and its fields."""
    canonical = orjson.dumps([kind, meaning], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


IDEMPOTENCY_RECORD = """
SELECT request_hash, resource_type, resource_id, status_code
FROM idempotency_key WHERE tenant_id = $1 AND key = $2
"""


async def replay(
    conn: Connection, tenant_id: uuid.UUID, key: str, digest: bytes
) -> Accepted | None:
    """The key's resource, if the key is taken by this same request; None if it is free;
    `IdempotencyKeyReused` if another request took it."""
    record = await conn.fetchrow(IDEMPOTENCY_RECORD, tenant_id, key)
    if record is None:
        return None
    if record["request_hash"] != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key"
        )
    fetch: dict[str, Callable[[Connection, uuid.UUID, uuid.UUID], Awaitable[Record | None]]] = {
        "account": accounts.get_account,
        "operation": operations.get_operation,
        "replenishment_batch": operations.get_batch,
    }
    resource = await fetch[record["resource_type"]](conn, record["resource_id"], tenant_id)
    assert resource is not None, "an idempotency record always names an existing resource"
    return Accepted(resource, record["status_code"], replayed=True)


async def accept(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str | None,
    digest: bytes,
    status_code: int,
    insert: Callable[[], Awaitable[Record | None]],
    why_not: Callable[[], PaysysError | None] = lambda: None,
) -> Accepted:
    """Run an intake statement; if it created nothing, replay the key's resource.

    `insert` returns the new resource, or None when the key is taken or the request names
    something missing; `why_not` (asked after `insert`, from what it learnt) tells the
    latter. A key that
    expires between the two (retention runs concurrently) is simply free again: insert
    once more.
    """
    for _ in range(2):
        try:
            row = await insert()
        except asyncpg.LockNotAvailableError as exc:
            raise await _lock_timeout(conn, tenant_id, key) from exc
        if row is not None:
            return Accepted(row, status_code, replayed=False)
        if key is not None:
            replayed = await replay(conn, tenant_id, key, digest)
            if replayed is not None:
                return replayed
        error = why_not()
        if error is not None:
            raise error
    raise ServiceUnavailable("The request could not be recorded; retry with the same key")


async def _lock_timeout(conn: Connection, tenant_id: uuid.UUID, key: str | None) -> PaysysError:
    """A statement waited too long for a lock: on its key (a duplicate still in flight:
    409), or on its wallet's queue (busy: 503, retry)."""
    if key is not None and await key_in_flight(conn, tenant_id, key):
        return IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still being processed; retry shortly"
        )
    return ServiceUnavailable("The wallet is busy; retry shortly with the same Idempotency-Key")


PROBE_KEY = """
INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, resource_id,
                             status_code)
VALUES ($1, $2, '\\x', 'operation', '00000000-0000-0000-0000-000000000000', 0)
ON CONFLICT DO NOTHING
"""


class _RollBack(Exception):
    pass


async def key_in_flight(conn: Connection, tenant_id: uuid.UUID, key: str) -> bool:
    """Whether another transaction is inserting this key right now. A probe that must
    never be kept: it opens its own transaction, and always rolls it back."""
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '100ms'")
            await conn.execute(PROBE_KEY, tenant_id, key)
            raise _RollBack
    except asyncpg.LockNotAvailableError:
        return True
    except _RollBack:
        return False


INSERT_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, resource_id, status_code)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING resource_id
"""


async def insert_key(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    request_hash: bytes,
    resource_type: str,
    resource_id: uuid.UUID,
    status_code: int,
) -> bool:
    """False if the key is taken (after waiting for a concurrent holder to commit)."""
    inserted = await conn.fetchval(
        INSERT_IDEMPOTENCY_KEY,
        tenant_id,
        key,
        request_hash,
        resource_type,
        resource_id,
        status_code,
    )
    return inserted is not None
