"""The schema is built and removed by Alembic, and refuses a broken ledger by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from sqlalchemy.engine import make_url

from devtools.databases import create_database, drop_database
from shared.ids import uuid7
from shared.migrate import downgrade, upgrade
from tests.raw_ledger import FUNDING, Ledger, refused, refused_postings, scratch_connection
from tests.stack import ADMIN_URL


@pytest.fixture
def scratch() -> Iterator[psycopg2.extensions.connection]:
    """An empty database of its own, migrated to head; a test may break it freely."""
    yield from scratch_connection()


def tables(conn: psycopg2.extensions.connection) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_migrations_build_and_remove_the_schema() -> None:
    name = f"paysys_scratch_{uuid.uuid4().hex[:10]}"
    url = create_database(ADMIN_URL, name)
    sa_url = make_url(url).set(drivername="postgresql+psycopg2").render_as_string(False)
    try:
        upgrade(sa_url)
        conn = psycopg2.connect(url)
        conn.autocommit = True
        assert {
            "account",
            "wallet",
            "operation",
            "transaction",
            "posting",
            "currency",
            "tenant",
            "api_key",
            "idempotency_key",
            "wallet_sequence",
        } <= tables(conn)
        downgrade(sa_url)
        assert tables(conn) == {"alembic_version"}
        upgrade(sa_url)  # and back again
        assert "posting" in tables(conn)
        conn.close()
    finally:
        drop_database(ADMIN_URL, name)


def test_a_correct_hand_written_replenishment_is_accepted(
    scratch: psycopg2.extensions.connection,
) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    ledger.replenish(wallet, 500)
    with scratch.cursor() as cur:
        cur.execute("SELECT balance, entry_count FROM wallet WHERE id = %s", (wallet,))
        assert cur.fetchone() == (500, 1)


def test_user_balance_never_below_zero(scratch: psycopg2.extensions.connection) -> None:
    wallet = Ledger(scratch).wallet()
    error = refused(scratch, "UPDATE wallet SET balance = -1 WHERE id = %s", wallet)
    assert "ck_wallet_balance_non_negative" in error


def test_user_balance_never_above_the_limit(scratch: psycopg2.extensions.connection) -> None:
    wallet = Ledger(scratch).wallet()
    error = refused(scratch, "UPDATE wallet SET balance = 100000000000000 WHERE id = %s", wallet)
    assert "ck_wallet_balance_limit" in error


def test_amounts_must_be_positive_and_bounded(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    for amount in (0, -5, 100_000_000_001):
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_operation_amount_positive"):
            ledger.operation(wallet, amount)


def test_idempotency_key_unique_per_tenant(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    insert = (
        "INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, "
        "resource_id, status_code) VALUES (%s, 'k', %s, 'operation', %s, 202)"
    )
    ledger.sql(insert, ledger.tenant, b"h", uuid7())
    error = refused(scratch, insert, ledger.tenant, b"h", uuid7())
    assert "pk_idempotency_key" in error


def test_postings_of_a_transaction_must_balance(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    txn = ledger.transaction(ledger.operation(wallet))
    error = refused_postings(scratch, txn, (FUNDING, 1, -100, -100), (wallet, 1, 99, 99))
    assert "do not balance" in error
    error = refused_postings(scratch, txn, (wallet, 1, 100, 100))
    assert "do not balance" in error  # a single leg is not a transaction


def test_running_balance_must_continue(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    txn = ledger.transaction(ledger.operation(wallet))
    error = refused_postings(scratch, txn, (FUNDING, 1, -100, -100), (wallet, 1, 100, 150))
    assert "does not continue" in error
    error = refused_postings(  # skipping entry 1
        scratch, txn, (FUNDING, 1, -100, -100), (wallet, 2, 100, 100)
    )
    assert "does not continue" in error


def test_wallet_balance_must_match_its_postings(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    ledger.replenish(wallet, 500)
    error = refused(scratch, "UPDATE wallet SET balance = 600 WHERE id = %s", wallet)
    assert "not the sum of its postings" in error
    error = refused(scratch, "UPDATE wallet SET entry_count = 0, balance = 0 WHERE id = %s", wallet)
    assert "not the sum of its postings" in error


def test_ledger_is_append_only(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    ledger.replenish(ledger.wallet(), 500)
    assert "append-only" in refused(scratch, "UPDATE posting SET amount = amount")
    assert "append-only" in refused(scratch, "DELETE FROM posting")
    assert "append-only" in refused(scratch, "TRUNCATE posting CASCADE")
    assert "append-only" in refused(scratch, "DELETE FROM transaction")


def test_final_operations_never_change(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    op = ledger.replenish(ledger.wallet(), 500)
    error = refused(
        scratch,
        "UPDATE operation SET status = 'failed', error_code = 'x' WHERE id = %s",
        op,
    )
    assert "final" in error
    pending = ledger.operation(ledger.wallet())
    assert "may only change its outcome" in refused(
        scratch, "UPDATE operation SET amount = 1 WHERE id = %s", pending
    )
    assert "never deleted" in refused(scratch, "DELETE FROM operation WHERE id = %s", pending)


def test_succeeded_needs_a_transaction_and_failed_an_error(
    scratch: psycopg2.extensions.connection,
) -> None:
    ledger = Ledger(scratch)
    op = ledger.operation(ledger.wallet())
    assert "succeeded without its transaction" in refused(
        scratch, "UPDATE operation SET status = 'succeeded', completed_at = now() WHERE id = %s", op
    )
    assert "ck_operation_failed" in refused(
        scratch, "UPDATE operation SET status = 'failed', completed_at = now() WHERE id = %s", op
    )


def test_ledger_rows_must_reference_existing_rows(
    scratch: psycopg2.extensions.connection,
) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    op = ledger.operation(wallet)
    missing = uuid7()
    # A transaction for an operation that does not exist, or is no longer pending.
    assert "not a pending operation" in refused(
        scratch,
        "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'replenishment')",
        uuid7(),
        missing,
    )
    done = ledger.operation(ledger.wallet())
    ledger.sql(
        "UPDATE operation SET status = 'failed', error_code = 'x', completed_at = now() "
        "WHERE id = %s",
        done,
    )
    assert "not a pending operation" in refused(
        scratch,
        "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'replenishment')",
        uuid7(),
        done,
    )
    assert "not a pending operation" in refused(  # of another type
        scratch,
        "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'transfer')",
        uuid7(),
        op,
    )
    # Postings of a transaction that does not exist, or of a wallet that does not.
    assert "does not exist" in refused_postings(
        scratch, missing, (FUNDING, 1, -100, -100), (wallet, 1, 100, 100)
    )
    txn = ledger.transaction(op)
    assert "does not exist" in refused_postings(
        scratch, txn, (FUNDING, 1, -100, -100), (missing, 1, 100, 100)
    )
    # And what is referenced is never deleted.
    assert "never deleted" in refused(scratch, "DELETE FROM wallet WHERE id = %s", wallet)
    assert "never deleted" in refused(scratch, "TRUNCATE wallet CASCADE")


def test_operations_cannot_name_another_tenants_wallet(
    scratch: psycopg2.extensions.connection,
) -> None:
    mine, theirs = Ledger(scratch), Ledger(scratch)
    wallet = theirs.wallet()
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        mine.operation(wallet)


def test_queue_positions_are_unique(scratch: psycopg2.extensions.connection) -> None:
    ledger = Ledger(scratch)
    wallet = ledger.wallet()
    ledger.operation(wallet, position=1)
    with pytest.raises(psycopg2.errors.UniqueViolation):
        ledger.operation(wallet, position=1)
