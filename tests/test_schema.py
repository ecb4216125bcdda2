"""The schema is built and removed by Alembic, and refuses a broken ledger by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest
from sqlalchemy.engine import make_url

from devtools.databases import create_database, drop_database
from shared.ids import uuid7
from shared.migrate import downgrade, upgrade
from tests.stack import ADMIN_URL

psycopg2.extras.register_uuid()  # type: ignore[no-untyped-call]

FUNDING = uuid.UUID("00000000-0000-7000-8000-000000000001")


@pytest.fixture
def scratch() -> Iterator[psycopg2.extensions.connection]:
    """An empty database of its own, migrated to head; a test may break it freely."""
    name = f"paysys_scratch_{uuid.uuid4().hex[:10]}"
    url = create_database(ADMIN_URL, name)
    sa_url = make_url(url).set(drivername="postgresql+psycopg2").render_as_string(False)
    upgrade(sa_url)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
        drop_database(ADMIN_URL, name)


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


class Ledger:
    """Raw writes, bypassing the service, to prove the database refuses bad ones."""

    def __init__(self, conn: psycopg2.extensions.connection):
        self.conn = conn
        self.tenant = uuid7()
        self.sql("INSERT INTO tenant (id, name) VALUES (%s, %s)", self.tenant, str(self.tenant))

    def sql(self, statement: str, *args: object) -> None:
        with self.conn.cursor() as cur:
            cur.execute(statement, args)

    def wallet(self) -> uuid.UUID:
        account, wallet = uuid7(), uuid7()
        self.sql(
            "INSERT INTO account (id, tenant_id, name) VALUES (%s, %s, 'x')", account, self.tenant
        )
        self.sql(
            "INSERT INTO wallet (id, account_id, tenant_id, currency) VALUES (%s, %s, %s, 'USD')",
            wallet,
            account,
            self.tenant,
        )
        self.sql("INSERT INTO wallet_sequence (wallet_id) VALUES (%s)", wallet)
        return wallet

    def operation(self, wallet: uuid.UUID, amount: int = 100, position: int = 1) -> uuid.UUID:
        op = uuid7()
        self.sql(
            "INSERT INTO operation (id, tenant_id, type, amount, currency, wallet_id, "
            "position) VALUES (%s, %s, 'replenishment', %s, 'USD', %s, %s)",
            op,
            self.tenant,
            amount,
            wallet,
            position,
        )
        return op

    def transaction(self, op: uuid.UUID) -> uuid.UUID:
        """The transaction of a pending replenishment, with no postings yet."""
        txn = uuid7()
        self.sql(
            "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'replenishment')",
            txn,
            op,
        )
        return txn

    def replenish(
        self,
        wallet: uuid.UUID,
        amount: int,
        entry_no: int = 1,
        funding_entry: int = 1,
        balance_before: int = 0,
    ) -> uuid.UUID:
        """A correct replenishment, written by hand in one transaction."""
        op = self.operation(wallet, amount, position=entry_no)
        txn = uuid7()
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'replenishment')",
                (txn, op),
            )
            cur.execute(
                "INSERT INTO posting (id, transaction_id, wallet_id, entry_no, amount, "
                "balance_after) VALUES (%s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s)",
                (
                    uuid7(),
                    txn,
                    FUNDING,
                    funding_entry,
                    -amount,
                    -amount,
                    uuid7(),
                    txn,
                    wallet,
                    entry_no,
                    amount,
                    balance_before + amount,
                ),
            )
            cur.execute(
                "UPDATE wallet SET balance = %s, entry_count = %s WHERE id = %s",
                (balance_before + amount, entry_no, wallet),
            )
            cur.execute(
                "UPDATE wallet SET balance = %s, entry_count = %s WHERE id = %s",
                (-amount, funding_entry, FUNDING),
            )
            cur.execute(
                "UPDATE operation SET status = 'succeeded', completed_at = now() WHERE id = %s",
                (op,),
            )
        return op


def refused(conn: psycopg2.extensions.connection, statement: str, *args: object) -> str:
    """Run a statement in a transaction of its own; return the error that refused it."""
    with pytest.raises(psycopg2.Error) as info, conn, conn.cursor() as cur:
        cur.execute(statement, args)
    return str(info.value)


Leg = tuple[uuid.UUID, int, int, int]  # wallet, entry_no, amount, balance_after


def refused_postings(conn: psycopg2.extensions.connection, txn: uuid.UUID, *legs: Leg) -> str:
    """Write the legs as postings of `txn` in one statement; return the error that refused
    them."""
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(legs))
    return refused(
        conn,
        "INSERT INTO posting (id, transaction_id, wallet_id, entry_no, amount, balance_after) "
        f"VALUES {values}",
        *[value for leg in legs for value in (uuid7(), txn, *leg)],
    )


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
