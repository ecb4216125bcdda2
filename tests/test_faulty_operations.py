"""One operation that the database refuses to apply must not stall anybody else: it ends
`failed` with `internal_error`, and the rest of its drain (its own wallet's later
operations included) is applied as usual. Shown on a scratch database with a trigger
planted to refuse chosen operations, drained by the real ledger service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shared import audit
from shared.ledger.book import MAX_BALANCE
from shared.ledger.service import drain_once
from tests.scratch_ledger import Conn, accept, drain_all, scratch_database

REFUSE = """
CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM operation o WHERE o.id = NEW.operation_id AND o.amount % 1000 = 999)
    THEN
        RAISE EXCEPTION 'refused by the test: operation %', NEW.operation_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_marked BEFORE INSERT ON transaction
    FOR EACH ROW EXECUTE FUNCTION refuse_marked();
"""


@pytest.fixture
def refusing_db() -> Iterator[Conn]:
    """A scratch ledger whose database refuses to write any operation of amount ...999."""
    for _, conn in scratch_database():
        with conn, conn.cursor() as cur:
            cur.execute(REFUSE)
        yield conn


def outcomes(conn: Conn, wallets: list[uuid.UUID]) -> list[tuple[int, str, str | None]]:
    """(amount, status, error code) of the wallets' operations, in acceptance order."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT amount, status, error_code FROM operation "
            "WHERE queue_wallet_id = ANY(%s) ORDER BY seq",
            (wallets,),
        )
        return list(cur.fetchall())


def balances(conn: Conn, wallets: list[uuid.UUID]) -> list[int]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id, balance FROM wallet WHERE id = ANY(%s)", (wallets,))
        found = dict(cur.fetchall())
    return [found[w] for w in wallets]


def findings(conn: Conn) -> list[str]:
    with conn, conn.cursor() as cur:
        return [f.check.name for f in audit.run(cur)]


def test_a_refused_operation_fails_alone_and_the_rest_of_its_drain_is_applied(
    refusing_db: Conn,
) -> None:
    plan: list[tuple[str, int, int | None, int]] = [
        ("replenishment", 0, None, 5_000),
        ("replenishment", 1, None, 3_000),
        ("transfer", 0, 1, 1_999),  # refused by the database
        ("transfer", 0, 2, 500),  # behind it in wallet 0's queue
        ("transfer", 1, 3, 1_000),
        ("replenishment", 2, None, 999),  # refused
        ("replenishment", 2, None, 100),
        ("transfer", 3, 0, 250),
    ]
    wallets = accept(refusing_db, plan)
    with refusing_db, refusing_db.cursor() as cur:
        result = drain_once(cur, max_ops=1000)  # everything in one drain
    assert result.applied == len(plan)
    assert len(result.faulty) == 2

    assert outcomes(refusing_db, wallets) == [
        (5_000, "succeeded", None),
        (3_000, "succeeded", None),
        (1_999, "failed", "internal_error"),
        (500, "succeeded", None),
        (1_000, "succeeded", None),
        (999, "failed", "internal_error"),
        (100, "succeeded", None),
        (250, "succeeded", None),
    ]
    # Nothing of the refused operations moved: 5000-500+250, 3000-1000, 500+100, 1000-250.
    assert balances(refusing_db, wallets) == [4_750, 2_000, 600, 750]
    with refusing_db, refusing_db.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM transaction t JOIN operation o ON o.id = t.operation_id "
            "WHERE o.error_code = 'internal_error' AND o.queue_wallet_id = ANY(%s)",
            (wallets,),
        )
        assert cur.fetchone() == (0,)
    assert findings(refusing_db) == []


def test_refused_operations_in_small_drains_never_block_their_wallet(refusing_db: Conn) -> None:
    plan: list[tuple[str, int, int | None, int]] = [("replenishment", 0, None, 10_000)]
    plan += [("transfer", 0, 1, 1_999 if i % 3 == 0 else 100) for i in range(12)]
    wallets = accept(refusing_db, plan)
    drain_all(refusing_db, max_ops=4)
    statuses = [(status, code) for _, status, code in outcomes(refusing_db, wallets)]
    assert statuses.count(("failed", "internal_error")) == 4
    assert statuses.count(("succeeded", None)) == 9
    assert balances(refusing_db, wallets)[:2] == [10_000 - 8 * 100, 8 * 100]
    assert findings(refusing_db) == []


def test_a_credit_over_the_balance_limit_fails_and_moves_nothing() -> None:
    biggest = 100_000_000_000  # the largest amount an operation may have
    for _, conn in scratch_database():
        full = MAX_BALANCE // biggest  # 999 of them fit under the limit
        plan: list[tuple[str, int, int | None, int]] = [
            ("replenishment", 0, None, biggest) for _ in range(full)
        ]
        plan += [
            ("replenishment", 0, None, biggest),  # over the limit
            ("replenishment", 0, None, MAX_BALANCE - full * biggest),  # exactly to it
            ("replenishment", 0, None, 1),  # over it by a cent
            ("replenishment", 1, None, 10_000),
            ("transfer", 1, 0, 1),  # a transfer's credit is held to the limit too
        ]
        wallets = accept(conn, plan)
        drain_all(conn, max_ops=1000)
        tail = outcomes(conn, wallets)[full:]
        assert tail == [
            (biggest, "failed", "balance_limit_exceeded"),
            (MAX_BALANCE - full * biggest, "succeeded", None),
            (1, "failed", "balance_limit_exceeded"),
            (10_000, "succeeded", None),
            (1, "failed", "balance_limit_exceeded"),
        ]
        assert balances(conn, wallets)[:2] == [MAX_BALANCE, 10_000]
        assert findings(conn) == []
