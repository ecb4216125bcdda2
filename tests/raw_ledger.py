"""Raw writes on a scratch database, bypassing the service: what the schema tests use to
show that PostgreSQL itself refuses a broken ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
from sqlalchemy.engine import make_url

from devtools.databases import create_database, drop_database
from shared.ids import uuid7
from shared.migrate import upgrade
from tests.stack import ADMIN_URL

psycopg2.extras.register_uuid()  # type: ignore[no-untyped-call]

Conn = psycopg2.extensions.connection
FUNDING = uuid.UUID("00000000-0000-7000-8000-000000000001")


def scratch_connection() -> Iterator[Conn]:
    """An empty database of its own, migrated to head, and an autocommit connection to it;
    dropped afterwards. A test may break it freely."""
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
