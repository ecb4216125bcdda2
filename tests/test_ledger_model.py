"""The ledger's decision function against a simple model: random sequences of
operations, applied by `shared.ledger.service.apply`, must give the balances and
outcomes that plain arithmetic gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ledger.book import apply
from shared.ledger.repository import WalletState
from shared.ledger.service import interleave
from shared.operations.kind import PendingOperation
from tests.ledger_model import model_outcomes

WALLETS = [uuid.UUID(int=i) for i in range(1, 6)]
FUNDING = uuid.UUID(int=999)

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("replenishment"), st.sampled_from(WALLETS), st.none(), st.integers(1, 10_000)
        ),
        st.tuples(
            st.just("transfer"),
            st.sampled_from(WALLETS),
            st.sampled_from(WALLETS),
            st.integers(1, 10_000),
        ).filter(lambda t: t[1] != t[2]),
    ),
    max_size=60,
)


def pending(
    index: int, kind: str, first: uuid.UUID, second: uuid.UUID | None, amount: int
) -> PendingOperation:
    return PendingOperation(
        id=uuid.UUID(int=10_000 + index),
        type=kind,
        amount=amount,
        wallet_id=first if kind == "replenishment" else None,
        from_wallet_id=first if kind == "transfer" else None,
        to_wallet_id=second,
        batch_id=None,
        queue_wallet_id=first,
        seq=index,
        created_at=datetime.now(UTC),
        tenant_id=uuid.UUID(int=1),
        request_id=None,
    )


@settings(max_examples=300)
@given(operations, st.lists(st.integers(0, 5_000), min_size=5, max_size=5))
def test_apply_matches_the_model(
    ops: list[tuple[str, uuid.UUID, uuid.UUID | None, int]], opening: list[int]
) -> None:
    start = dict(zip(WALLETS, opening, strict=True))
    batch = [pending(i, *op) for i, op in enumerate(ops)]
    wallets = {w: WalletState(w, start[w], 1 if start[w] else 0) for w in WALLETS}
    funding = WalletState(FUNDING, -sum(opening), 5)
    book = apply(batch, wallets, funding)

    model = dict(start)
    expected = model_outcomes(ops, model)

    assert [outcome[1] for outcome in book.outcomes] == expected
    assert {w: book.wallets[w].balance for w in WALLETS} == model
    assert all(book.wallets[w].balance >= 0 for w in WALLETS)
    assert sum(model.values()) + book.wallets[FUNDING].balance == 0
    # Double entry per transaction, and each wallet's postings chain from its opening.
    by_txn: dict[uuid.UUID, int] = {}
    for _, txn, _, _, amount, _ in book.postings:
        by_txn[txn] = by_txn.get(txn, 0) + amount
    assert len(by_txn) == expected.count("succeeded")
    assert all(total == 0 for total in by_txn.values())
    running = {**start, FUNDING: -sum(opening)}
    for _, _, wallet, _, amount, balance_after in book.postings:
        running[wallet] += amount
        assert balance_after == running[wallet]


@given(st.lists(st.tuples(st.sampled_from(WALLETS), st.integers(0, 100)), max_size=40))
def test_interleave_keeps_each_queue_in_order(queue: list[tuple[uuid.UUID, int]]) -> None:
    # Operations as the repository returns them: grouped by wallet, each in queue order,
    # with arbitrary arrival numbers.
    ops = []
    for n, (wallet, seq) in enumerate(sorted(queue, key=lambda q: str(q[0]))):
        op = pending(n, "replenishment", wallet, None, 1)
        op.seq = seq
        ops.append(op)
    merged = interleave(ops)
    assert sorted(id(o) for o in merged) == sorted(id(o) for o in ops)
    for wallet in WALLETS:
        assert [o.id for o in merged if o.queue_wallet_id == wallet] == [
            o.id for o in ops if o.queue_wallet_id == wallet
        ]
