"""A scratch database with a small ledger: operations inserted as the intake records them,
applied by the real ledger service, for tests that inspect or deliberately break it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, cast

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import make_url

from devtools.databases import create_database, drop_database
from shared.asyncdb import Record
from shared.ids import uuid7
from shared.ledger.service import drain_once
from shared.ledger.sweeps import enqueue_expiries
from shared.migrate import upgrade
from shared.operations.kind import NewOperation, PendingOperation
from tests.stack import ADMIN_URL

Conn = psycopg2.extensions.connection
WALLETS = 4
Plan = list[tuple[str, int, int | None, int]]
# One applied operation, as the drain reports it: the operation, its status, its error code.
Applied = tuple[PendingOperation, str, str | None]


def scratch_database() -> Iterator[tuple[str, Conn]]:
    """A new, migrated database: (its URL, a connection to it). Dropped afterwards."""
    name = f"paysys_scratch_{uuid.uuid4().hex[:10]}"
    url = create_database(ADMIN_URL, name)
    upgrade(make_url(url).set(drivername="postgresql+psycopg2").render_as_string(False))
    conn = psycopg2.connect(url)
    try:
        yield url, conn
    finally:
        conn.close()
        drop_database(ADMIN_URL, name)


# As `shared.operations.repository.CREATE_OPERATION` records an operation (its position
# taken under the queue wallet's sequence row lock), with the time of acceptance given:
# tests decide which captures come after a hold's expiry.
RECORD = """
WITH queue AS (
    UPDATE wallet_sequence SET last_position = last_position + 1
    WHERE wallet_id = %(queue)s
    RETURNING last_position
)
INSERT INTO operation
    (id, tenant_id, type, amount, currency, wallet_id, from_wallet_id, to_wallet_id,
     reference, position, hold_id, reverses_operation_id, expires_at, created_at)
SELECT %(id)s, %(tenant)s, %(kind)s, %(amount)s, %(currency)s, %(wallet)s, %(source)s,
       %(destination)s, %(reference)s, queue.last_position, %(hold)s, %(reverses)s,
       COALESCE(%(at)s, now()) + make_interval(secs => %(expires_in)s::int),
       COALESCE(%(at)s, now())
FROM queue
"""

# What the routes read to derive a capture or void (its hold operation) and a reversal
# (the operation reversed): `get_hold` and `get_operation` of `shared.operations.repository`.
HOLD_ROW = """
SELECT id, from_wallet_id, to_wallet_id, amount, currency FROM operation
WHERE id = %s AND tenant_id = %s AND type = 'hold'
"""
OPERATION_ROW = """
SELECT id, type, status, amount, currency, wallet_id, from_wallet_id, to_wallet_id,
       reversed_amount
FROM operation WHERE id = %s AND tenant_id = %s
"""


class Tenant:
    """A new tenant with `wallets` wallets on the scratch database."""

    def __init__(self, conn: Conn, wallets: int = WALLETS):
        self.conn = conn
        self.id = uuid7()
        self.wallets = [uuid7() for _ in range(wallets)]
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO tenant (id, name) VALUES (%s, %s)", (self.id, str(self.id)))
            for wallet in self.wallets:
                account = uuid7()
                cur.execute(
                    "INSERT INTO account (id, tenant_id, name) VALUES (%s, %s, 'm')",
                    (account, self.id),
                )
                cur.execute(
                    "INSERT INTO wallet (id, account_id, tenant_id, currency) "
                    "VALUES (%s, %s, %s, 'USD')",
                    (wallet, account, self.id),
                )
                cur.execute("INSERT INTO wallet_sequence (wallet_id) VALUES (%s)", (wallet,))
                # As the intake does: the account's event in its transaction.
                cur.execute(
                    "INSERT INTO event (id, tenant_id, type, data) "
                    "VALUES (%s, %s, 'account.created', json_build_object('id', %s::text))",
                    (uuid7(), self.id, account),
                )

    def record(
        self, cur: psycopg2.extensions.cursor, new: NewOperation, at: datetime | None = None
    ) -> uuid.UUID:
        """Record the new operation, pending, at the next position of its queue wallet,
        accepted `at` (by default, now)."""
        operation_id = uuid7()
        cur.execute(
            RECORD,
            {
                "id": operation_id,
                "tenant": self.id,
                "kind": new.kind,
                "amount": new.amount,
                "currency": new.currency,
                "wallet": new.wallet_id,
                "source": new.from_wallet_id,
                "destination": new.to_wallet_id,
                "reference": new.reference,
                "queue": new.queue_wallet_id,
                "hold": new.hold_id,
                "reverses": new.reverses_operation_id,
                "expires_in": new.expires_in,
                "at": at,
            },
        )
        assert cur.rowcount == 1, f"no queue for {new}"
        return operation_id

    def _row(self, cur: psycopg2.extensions.cursor, statement: str, key: uuid.UUID) -> Record:
        cur.execute(statement, (key, self.id))
        values = cur.fetchone()
        assert values is not None and cur.description is not None
        columns = [column.name for column in cur.description]
        # Kinds derive captures and reversals from a row read by name, as asyncpg's are.
        return cast(Record, dict(zip(columns, values, strict=True)))

    def hold_row(self, cur: psycopg2.extensions.cursor, hold_id: uuid.UUID) -> Record:
        return self._row(cur, HOLD_ROW, hold_id)

    def operation_row(self, cur: psycopg2.extensions.cursor, operation_id: uuid.UUID) -> Record:
        return self._row(cur, OPERATION_ROW, operation_id)


def accept(conn: Conn, plan: Plan) -> list[uuid.UUID]:
    """A new tenant with WALLETS wallets, and the plan's replenishments and transfers as
    the intake records them (pending, each at the next position of its wallet's queue)."""
    tenant = Tenant(conn)
    wallets = tenant.wallets
    with conn, conn.cursor() as cur:
        for kind, first, second, amount in plan:
            fields: dict[str, Any] = {"wallet_id": wallets[first]}
            if kind == "transfer":
                assert second is not None
                fields = {"from_wallet_id": wallets[first], "to_wallet_id": wallets[second]}
            new = NewOperation(kind, amount, "USD", None, wallets[first], **fields)
            tenant.record(cur, new)
    return wallets


def drain_all(
    conn: Conn, max_ops: int, after_each: Callable[[list[Applied]], None] = lambda _: None
) -> list[Applied]:
    """Drain until nothing is left to claim, each drain in its own transaction; what was
    applied, in the order it was. `after_each` sees each drain's, once committed."""
    applied: list[Applied] = []
    for _ in range(10_000):
        with conn, conn.cursor() as cur:
            result = drain_once(cur, max_ops)
        if result.claimed_wallets == 0:
            return applied
        applied += result.outcomes
        after_each(result.outcomes)
    raise AssertionError("drains never ran out of work")


def sweep(conn: Conn) -> int:
    """What the sweeper does for holds: enqueue the expiry of those past their expiry."""
    with conn, conn.cursor() as cur:
        return enqueue_expiries(cur, limit=1_000)
