"""A scratch database with a small ledger: operations inserted as the intake records them,
applied by the real ledger service, for tests that inspect or deliberately break it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import make_url

from devtools.databases import create_database, drop_database
from shared.ids import uuid7
from shared.ledger.service import drain_once
from shared.migrate import upgrade
from tests.stack import ADMIN_URL

Conn = psycopg2.extensions.connection
WALLETS = 4
Plan = list[tuple[str, int, int | None, int]]


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


def accept(conn: Conn, plan: Plan) -> list[uuid.UUID]:
    """A new tenant with WALLETS wallets, and the plan's operations as the intake records
    them (pending, each at the next position of its wallet's queue)."""
    tenant = uuid7()
    wallets = [uuid7() for _ in range(WALLETS)]
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO tenant (id, name) VALUES (%s, %s)", (tenant, str(tenant)))
        for wallet in wallets:
            account = uuid7()
            cur.execute(
                "INSERT INTO account (id, tenant_id, name) VALUES (%s, %s, 'm')", (account, tenant)
            )
            cur.execute(
                "INSERT INTO wallet (id, account_id, tenant_id, currency) "
                "VALUES (%s, %s, %s, 'USD')",
                (wallet, account, tenant),
            )
        positions = [0] * WALLETS
        for kind, first, second, amount in plan:
            positions[first] += 1
            if kind == "replenishment":
                cur.execute(
                    "INSERT INTO operation (id, tenant_id, type, amount, currency, wallet_id, "
                    "position) VALUES (%s, %s, 'replenishment', %s, 'USD', %s, %s)",
                    (uuid7(), tenant, amount, wallets[first], positions[first]),
                )
            else:
                assert second is not None
                cur.execute(
                    "INSERT INTO operation (id, tenant_id, type, amount, currency, "
                    "from_wallet_id, to_wallet_id, position) "
                    "VALUES (%s, %s, 'transfer', %s, 'USD', %s, %s, %s)",
                    (uuid7(), tenant, amount, wallets[first], wallets[second], positions[first]),
                )
    return wallets


def drain_all(conn: Conn, max_ops: int) -> None:
    for _ in range(10_000):
        with conn, conn.cursor() as cur:
            result = drain_once(cur, max_ops)
        if result.claimed_wallets == 0:
            return
    raise AssertionError("drains never ran out of work")
