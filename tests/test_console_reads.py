"""The console's reads are index ranges: each statement, prepared as asyncpg prepares it and
planned as a generic plan (what PostgreSQL may settle on for a statement run many times,
knowing none of its parameters), reads the index it is written for and scans no table. So
no page's cost grows with the ledger, however the planner's statistics stand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2.extensions
import pytest

from api.console import feed_reads, reads, system_reads
from tests.scratch_ledger import scratch_database

T = uuid.uuid4()
X = uuid.uuid4()
NOW = datetime.now(UTC)

# (statement, parameters, indexes its plan must use: "a|b" when either will do, as the
# primary key and a unique index that begins with the same column)
CASES = {
    "search accounts": (
        reads.SEARCH_ACCOUNTS,
        (T, "ali", "ali\U0010ffff", "ali", X, 51),
        ["ix_account_tenant_id_lower_name_id"],
    ),
    "find an id": (
        reads.FIND_ID,
        (X, T),
        [
            "pk_wallet|uq_wallet_id_tenant_id",
            "uq_wallet_account_id_user",
            "pk_operation|uq_operation_id_tenant_id",
            "pk_transaction",
        ],
    ),
    "wallet": (
        reads.WALLET,
        (X, T),
        ["pk_wallet|uq_wallet_id_tenant_id", "pk_account|uq_account_id_tenant_id"],
    ),
    "active holds": (reads.ACTIVE_HOLDS, (X, T, 21), ["ix_hold_held_from_wallet_id"]),
    "queued operations": (
        reads.QUEUED_OPERATIONS,
        (X, T, reads.MAX_BIGINT, 21),
        ["uq_operation_queue_wallet_id_position"],
    ),
    "postings of a transaction": (
        reads.TRANSACTION_POSTINGS,
        (X, T),
        ["pk_transaction", "ix_posting_transaction_id", "pk_wallet|uq_wallet_id_tenant_id"],
    ),
    "related operations": (
        reads.RELATED_OPERATIONS,
        (X, T, 51),
        ["ix_operation_reverses_operation_id", "ix_operation_hold_id"],
    ),
    "recent events": (
        feed_reads.RECENT_EVENTS,
        (T, (1 << 64) - 1, reads.MAX_BIGINT, 51),
        ["ix_event_tenant_id_xid_seq"],
    ),
    "recent events of a type": (
        feed_reads.RECENT_EVENTS_OF_TYPES,
        (T, (1 << 64) - 1, reads.MAX_BIGINT, 51, feed_reads.TYPE_SCAN, ["hold.expired"]),
        ["ix_event_tenant_id_xid_seq", "pk_event|uq_event_id_tenant_id"],
    ),
    "webhook endpoints": (
        feed_reads.ENDPOINTS,
        (T, 21),
        ["ix_webhook_endpoint_tenant_id_id", "ix_webhook_delivery_undelivered"],
    ),
    "undelivered": (feed_reads.UNDELIVERED, (X, T, 21), ["ix_webhook_delivery_undelivered"]),
    "event types": (feed_reads.EVENT_TYPES_OF, ([X], T), ["pk_event|uq_event_id_tenant_id"]),
    "wallet names": (
        reads.WALLET_NAMES,
        ([X], T),
        ["pk_wallet|uq_wallet_id_tenant_id", "pk_account|uq_account_id_tenant_id"],
    ),
    "backlog": (system_reads.BACKLOG, (), ["ix_operation_pending_seq"]),
    "the last minutes": (
        system_reads.RECENT_MINUTES,
        (system_reads.uuid7_floor(NOW.timestamp() - 420), NOW, NOW),
        ["pk_operation|uq_operation_id_tenant_id"],
    ),
    "internal errors": (
        system_reads.INTERNAL_ERRORS,
        (T, reads.MAX_UUID, 21),
        ["ix_operation_internal_error_tenant_id_id"],
    ),
}


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[str]:
    """A database of its own: the shared test database's statistics change with every test
    run before this one, and with them the planner's choices among indexes."""
    for url, _ in scratch_database():
        yield url


@pytest.fixture
def planner(fresh_database: str) -> Iterator[psycopg2.extensions.cursor]:
    conn = psycopg2.connect(fresh_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute("SET enable_seqscan = off")  # a table scan shows, whatever it costs
        yield cur
    conn.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_read_is_an_index_range(planner: psycopg2.extensions.cursor, name: str) -> None:
    statement, parameters, indexes = CASES[name]
    planner.execute("DEALLOCATE ALL")
    planner.execute(f"PREPARE console_read AS {statement}")
    placeholders = ", ".join(["%s"] * len(parameters))
    execute = f"EXECUTE console_read ({placeholders})" if parameters else "EXECUTE console_read"
    planner.execute(f"EXPLAIN {execute}", parameters)
    plan = "\n".join(row[0] for row in planner.fetchall())
    assert "Seq Scan" not in plan, plan
    for index in indexes:
        assert any(i in plan for i in index.split("|")), f"{name} does not use {index}:\n{plan}"
