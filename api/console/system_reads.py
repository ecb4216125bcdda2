"""The system page's reads (asyncpg, bound parameters only): how far behind the workers
are, how much they applied and how fast over the last minutes, and the tenant's
operations that failed with `internal_error`.

The rule they keep: each costs the same on a ledger of millions of postings as on an
empty one. The backlog is read from the index of pending operations, and counted only up
to a cap; the last minutes are a range of the operations' primary key (UUIDv7 ids begin
with their creation time), capped too; internal errors come from their own partial index.
The backlog and the throughput are the whole installation's, as `/metrics` publishes them
to anyone; the operations listed are the tenant's only.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from shared.asyncdb import Connection, Record
from shared.operations.repository import OPERATION_COLUMNS, OPERATION_FROM

PENDING_CAP = 10_000
RECENT_CAP = 200_000

BACKLOG = f"""
SELECT (SELECT count(*) FROM (SELECT 1 FROM operation WHERE status = 'pending'
                              LIMIT {PENDING_CAP + 1}) p) AS pending,
       EXTRACT(EPOCH FROM now() - (SELECT created_at FROM operation WHERE status = 'pending'
                                   ORDER BY seq LIMIT 1))::float8 AS oldest_seconds
"""


async def backlog(conn: Connection) -> Record:
    """`pending` (at most PENDING_CAP + 1) and `oldest_seconds` (None when none is)."""
    row = await conn.fetchrow(BACKLOG)
    assert row is not None
    return row


# Per minute of the window: operations accepted then, and operations applied then (by
# outcome) with the percentiles of their time from acceptance to final. Operations
# accepted before the window and applied in it are not seen: only a backlog older than the
# window's margin makes that happen, and the backlog's age says so.
RECENT_MINUTES = f"""
WITH recent AS MATERIALIZED (
    SELECT created_at, completed_at, status FROM operation
    WHERE id >= $1 AND created_at >= $2
    ORDER BY id DESC
    LIMIT {RECENT_CAP}
), minutes AS (
    SELECT generate_series(date_trunc('minute', $3::timestamptz),
                           date_trunc('minute', now()), interval '1 minute') AS minute
), accepted AS (
    SELECT date_trunc('minute', created_at) AS minute, count(*) AS n
    FROM recent GROUP BY 1
), applied AS (
    SELECT date_trunc('minute', completed_at) AS minute,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
               (ORDER BY EXTRACT(EPOCH FROM completed_at - created_at)) AS seconds
    FROM recent WHERE completed_at IS NOT NULL GROUP BY 1
)
SELECT m.minute, COALESCE(a.n, 0) AS accepted, COALESCE(p.succeeded, 0) AS succeeded,
       COALESCE(p.failed, 0) AS failed, p.seconds,
       (SELECT count(*) FROM recent) AS sampled
FROM minutes m
LEFT JOIN accepted a ON a.minute = m.minute
LEFT JOIN applied p ON p.minute = m.minute
ORDER BY m.minute DESC
"""
# Operations are scanned from this much before the first minute shown.
MARGIN_SECONDS = 120


def uuid7_floor(unix_seconds: float) -> uuid.UUID:
    """The smallest UUIDv7 of that millisecond: every id made since is above it."""
    return uuid.UUID(int=int(unix_seconds * 1000) << 80)


async def recent_minutes(conn: Connection, minutes: int) -> list[Record]:
    """Newest minute first, the current one (partial) included."""
    now = time.time()
    shown_from = datetime.fromtimestamp(now - (minutes - 1) * 60, UTC)
    scan_from = now - (minutes - 1) * 60 - 60 - MARGIN_SECONDS
    return await conn.fetch(
        RECENT_MINUTES,
        uuid7_floor(scan_from),
        datetime.fromtimestamp(scan_from, UTC),
        shown_from,
    )


# The tenant's operations that failed inside paysys, newest first: the partial index
# `ix_operation_internal_error_tenant_id_id` holds only those.
INTERNAL_ERRORS = f"""
SELECT {OPERATION_COLUMNS}
FROM {OPERATION_FROM}
WHERE o.tenant_id = $1 AND o.error_code = 'internal_error' AND o.id < $2
ORDER BY o.id DESC
LIMIT $3
"""


async def internal_errors(
    conn: Connection, tenant_id: uuid.UUID, before: uuid.UUID | None, limit: int
) -> list[Record]:
    bound = before or uuid.UUID(int=(1 << 128) - 1)
    return await conn.fetch(INTERNAL_ERRORS, tenant_id, bound, limit)
