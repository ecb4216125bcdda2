"""Statements on webhook endpoints, as the API's routes need them (asyncpg, bound
parameters only): registration, reads, soft deletion, re-enabling, the attempts log and
redelivery by hand. Fan-out and delivery have theirs next to the sender.

* Every statement is scoped to the tenant, and a deleted endpoint (`deleted_at` set) is
  as if it did not exist: the routes answer 404 for both.
* A tenant has at most `MAX_ENDPOINTS` endpoints not deleted. Registration counts them
  under a transaction-scoped advisory lock on the tenant, so that two registrations at
  once cannot both take the last place: the caller runs `create_endpoint` in a
  transaction.
* A new endpoint receives the events created after it: its fan-out starts at the feed's
  horizon (`pg_snapshot_xmin`), so every event of a transaction still running, or begun
  later, is after it (an event's key is never below its transaction's id).
"""

from __future__ import annotations

import uuid

from shared.asyncdb import Connection, Record

MAX_ENDPOINTS = 20
# Seeds `hashtextextended` for the registration lock, apart from other advisory locks.
_REGISTRATION_LOCK_SEED = 0x77686B

ENDPOINT_COLUMNS = """
    id, url, event_types, description, created_at, disabled_at, disabled_reason
"""

LOCK_REGISTRATIONS = "SELECT pg_advisory_xact_lock(hashtextextended($1::text, $2))"

CREATE_ENDPOINT = f"""
INSERT INTO webhook_endpoint
    (id, tenant_id, url, event_types, description, secret, fanout_xid, fanout_seq)
SELECT $1, $2, $3, $4::text[], $5, $6, pg_snapshot_xmin(pg_current_snapshot()), 0
WHERE (SELECT count(*) FROM webhook_endpoint
       WHERE tenant_id = $2 AND deleted_at IS NULL) < $7
RETURNING {ENDPOINT_COLUMNS}
"""


async def create_endpoint(
    conn: Connection,
    *,
    endpoint_id: uuid.UUID,
    tenant_id: uuid.UUID,
    url: str,
    event_types: list[str],
    description: str | None,
    sealed_secret: str,
) -> Record | None:
    """The new endpoint, or None when the tenant already has `MAX_ENDPOINTS`. Runs inside
    the caller's transaction (the lock is held until it ends)."""
    await conn.execute(LOCK_REGISTRATIONS, str(tenant_id), _REGISTRATION_LOCK_SEED)
    return await conn.fetchrow(
        CREATE_ENDPOINT,
        endpoint_id,
        tenant_id,
        url,
        event_types,
        description,
        sealed_secret,
        MAX_ENDPOINTS,
    )


GET_ENDPOINT = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
"""


async def get_endpoint(
    conn: Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(GET_ENDPOINT, endpoint_id, tenant_id)


# Newest first, keyset-paginated on the id (UUIDv7: creation time, then random bits).
LIST_ENDPOINTS = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint
WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3
"""


async def list_endpoints(
    conn: Connection, tenant_id: uuid.UUID, before: uuid.UUID | None, limit: int
) -> list[Record]:
    return await conn.fetch(LIST_ENDPOINTS, tenant_id, before, limit)


DELETE_ENDPOINT = """
UPDATE webhook_endpoint SET deleted_at = now()
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
RETURNING id
"""


async def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    """Whether there was such an endpoint (now deleted). Its deliveries and attempts stay,
    as a record; the sender skips the deliveries of a deleted endpoint."""
    return await conn.fetchval(DELETE_ENDPOINT, endpoint_id, tenant_id) is not None


# The disabling clock (failing_since) restarts only for an endpoint that was disabled: on
# an enabled one, this changes nothing.
ENABLE_ENDPOINT = f"""
UPDATE webhook_endpoint SET
    failing_since = CASE WHEN disabled_at IS NULL THEN failing_since END,
    disabled_at = NULL,
    disabled_reason = NULL
WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL
RETURNING {ENDPOINT_COLUMNS}
"""


async def enable_endpoint(
    conn: Connection, endpoint_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(ENABLE_ENDPOINT, endpoint_id, tenant_id)


# Newest first: the attempt log's id is its order of writing.
LIST_ATTEMPTS = """
SELECT id, event_id, attempt, status_code, error, delivered, created_at, next_attempt_at
FROM webhook_attempt
WHERE endpoint_id = $1 AND tenant_id = $2 AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC
LIMIT $4
"""


async def list_attempts(
    conn: Connection,
    endpoint_id: uuid.UUID,
    tenant_id: uuid.UUID,
    before: int | None,
    limit: int,
) -> list[Record]:
    return await conn.fetch(LIST_ATTEMPTS, endpoint_id, tenant_id, before, limit)


# One of the tenant's events, sent again to one of its endpoints: its delivery (made now if
# fan-out has not made it, or the event is older than the endpoint) is due at once, neither
# delivered nor given up; its count of attempts goes on. No row: the event is not the
# tenant's, or the endpoint is gone.
REDELIVER = """
INSERT INTO webhook_delivery
    (endpoint_id, event_id, tenant_id, next_attempt_at, event_created_at)
SELECT w.id, e.id, e.tenant_id, now(), e.created_at
FROM event e JOIN webhook_endpoint w ON w.tenant_id = e.tenant_id
WHERE e.id = $2 AND e.tenant_id = $3 AND w.id = $1 AND w.deleted_at IS NULL
ON CONFLICT (endpoint_id, event_id) DO UPDATE SET
    next_attempt_at = now(), delivered_at = NULL, given_up_at = NULL
RETURNING endpoint_id, event_id, attempts, next_attempt_at, delivered_at, given_up_at,
          created_at
"""


async def redeliver(
    conn: Connection, endpoint_id: uuid.UUID, event_id: uuid.UUID, tenant_id: uuid.UUID
) -> Record | None:
    return await conn.fetchrow(REDELIVER, endpoint_id, event_id, tenant_id)
