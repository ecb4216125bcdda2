"""The ledger service on a real database: random sequences of replenishments and
transfers, written as the intake writes them, drained by `drain_once`, must give what a
plain in-memory model of balances gives, and keep every audited invariant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import audit
from tests.ledger_model import model_outcomes
from tests.scratch_ledger import WALLETS, Conn, accept, drain_all, scratch_database

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("replenishment"), st.integers(0, WALLETS - 1), st.none(), st.integers(1, 5_000)
        ),
        st.tuples(
            st.just("transfer"),
            st.integers(0, WALLETS - 1),
            st.integers(0, WALLETS - 1),
            st.integers(1, 5_000),
        ).filter(lambda t: t[1] != t[2]),
    ),
    min_size=1,
    max_size=40,
)


@pytest.fixture(scope="module")
def ledger_db() -> Iterator[Conn]:
    for _, conn in scratch_database():
        yield conn


def _state(conn: Conn, wallets: list[uuid.UUID]) -> tuple[list[int], list[str]]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id, balance FROM wallet WHERE id = ANY(%s)", (wallets,))
        balances = dict(cur.fetchall())
        cur.execute(
            "SELECT status FROM operation WHERE queue_wallet_id = ANY(%s) ORDER BY seq",
            (wallets,),
        )
        statuses = [row[0] for row in cur.fetchall()]
    return [balances[w] for w in wallets], statuses


def _model(plan: list[tuple[str, int, int | None, int]]) -> tuple[list[int], list[str]]:
    balances = dict.fromkeys(range(WALLETS), 0)
    statuses = model_outcomes(plan, balances)
    return list(balances.values()), statuses


def _audit(conn: Conn) -> list[str]:
    with conn, conn.cursor() as cur:
        return [f.check.name for f in audit.run(cur)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
def test_one_drain_applies_in_acceptance_order_like_the_model(
    ledger_db: Conn, plan: list[tuple[str, int, int | None, int]]
) -> None:
    wallets = accept(ledger_db, plan)
    drain_all(ledger_db, max_ops=1000)
    assert _state(ledger_db, wallets) == _model(plan)
    assert _audit(ledger_db) == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps, max_ops=st.integers(1, 5))
def test_many_small_drains_keep_every_invariant(
    ledger_db: Conn, plan: list[tuple[str, int, int | None, int]], max_ops: int
) -> None:
    wallets = accept(ledger_db, plan)
    drain_all(ledger_db, max_ops=max_ops)
    balances, statuses = _state(ledger_db, wallets)
    assert "pending" not in statuses
    assert min(balances) >= 0
    # Money is only created by replenishments that succeeded (all of them do).
    assert sum(balances) == sum(a for kind, _, _, a in plan if kind == "replenishment")
    assert _audit(ledger_db) == []
