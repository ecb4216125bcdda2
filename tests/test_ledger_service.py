"""The ledger service on a real database, against the arithmetic model of the ledger
(`tests.ledger_model`).

Random rounds of replenishments, transfers, withdrawals, holds (with and without a
destination, expiring within the round or not for weeks), captures (whole and partial),
voids and reversals (partial, whole, and beyond what is left), derived and recorded as the
intake records them, are applied by the real drain: in one big drain per round, or in many
small drains with the sweeper's expiries enqueued between them. Reversals mostly name
operations that succeeded in earlier rounds, as a client can only reverse what succeeded;
what intake refuses (a reversal of anything else, a capture above its hold) is refused
here too, as the model says it must be.

The model applies each operation in the order the drain did, and must predict its outcome
(status and error code); that order must keep each wallet's queue in acceptance order (in
one big drain, the whole acceptance order). Afterwards every balance, held and available
amount, hold status, captured amount and reversed amount must be the model's, and
`paysys audit` must find nothing.

Time is the test's: operations are accepted at chosen instants a day ago, a round a
thousand seconds after the previous one, so that a capture may come before or after its
hold's expiry, and every hold expiring within its round is past due, as the sweeper sees
it, once the round is accepted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shared import audit
from shared.errors import PaysysError
from shared.money import format_cents
from shared.operations import KINDS
from shared.operations.capture import Capture, CaptureCreate
from shared.operations.hold import MAX_EXPIRES_IN, Hold, HoldCreate
from shared.operations.kind import NewOperation
from shared.operations.replenishment import Replenishment, ReplenishmentCreate
from shared.operations.reversal import Reversal, ReversalCreate
from shared.operations.transfer import Transfer, TransferCreate
from shared.operations.void import Void, VoidCreate
from shared.operations.withdrawal import Withdrawal, WithdrawalCreate
from tests.ledger_model import REVERSIBLE, LedgerModel, Operation
from tests.scratch_ledger import WALLETS, Applied, Conn, Tenant, drain_all, scratch_database, sweep

ROUND_SECONDS = 1_000


class Step(NamedTuple):
    """One request. `first` is a wallet; for a capture or void, one of the holds accepted
    so far, counted from the latest; for a reversal, likewise one of the operations it may
    name. A capture's or reversal's `amount` is a percentage of the hold's or original's
    amount (above 100: more than it may take), or 0 to leave it out for the default."""

    kind: str
    first: int
    second: int | None = None  # the destination wallet; for a reversal, a kind to reverse
    amount: int = 0
    expires_in: int = MAX_EXPIRES_IN  # holds
    any_target: bool = False  # reversals: any operation so far, not only succeeded ones


wallet = st.integers(0, WALLETS - 1)
two_wallets = st.builds(
    lambda first, offset: (first, (first + offset) % WALLETS), wallet, st.integers(1, WALLETS - 1)
)
small = st.integers(1, 2_000)
share = st.one_of(st.just(0), st.integers(1, 100), st.integers(1, 100), st.integers(101, 130))

replenishment = st.builds(Step, st.just("replenishment"), wallet, st.none(), st.integers(1, 5_000))
transfer = st.builds(lambda w, a: Step("transfer", w[0], w[1], a), two_wallets, small)
withdrawal = st.builds(Step, st.just("withdrawal"), wallet, st.none(), small)
hold = st.builds(
    lambda w, destination, a, expires_in: Step(
        "hold", w[0], w[1] if destination else None, a, expires_in
    ),
    two_wallets,
    st.booleans(),
    small,
    st.integers(1, 20) | st.just(MAX_EXPIRES_IN),
)
capture = st.builds(lambda ref, a: Step("capture", ref, None, a), st.integers(0, 50), share)
void = st.builds(lambda ref: Step("void", ref), st.integers(0, 50))
reversal = st.builds(
    lambda ref, of, a, any_target: Step("reversal", ref, of, a, any_target=any_target),
    st.integers(0, 50),
    # Any kind, or one: captures most, the rarest to have succeeded in an earlier round.
    st.sampled_from([None, *range(len(REVERSIBLE)), *[REVERSIBLE.index("capture")] * 3]),
    share,
    st.sampled_from([False, False, False, True]),
)
# Kinds that need an earlier operation (a hold to capture, a success to reverse) and the
# replenishments that fund everything come more often.
step = st.one_of(
    replenishment, replenishment, transfer, withdrawal, hold, hold, capture, capture, void,
    reversal, reversal,
)  # fmt: skip
rounds = st.lists(st.lists(step, min_size=1, max_size=20), min_size=2, max_size=4)
# Each wallet's first replenishment, before the first round: without them most examples
# would be about empty wallets.
opening = st.lists(st.integers(2_000, 12_000), min_size=WALLETS, max_size=WALLETS)


@pytest.fixture(scope="module")
def ledger_db() -> Iterator[Conn]:
    for _, conn in scratch_database():
        yield conn


def _body(**fields: Any) -> dict[str, Any]:
    """A request body: amounts as the API takes them, left out when 0."""
    amount = fields.pop("amount", 0)
    return {**fields, **({"amount": format_cents(amount)} if amount else {})}


def _share(amount: int, percent: int) -> int:
    return -(-amount * percent // 100)  # rounded up: never 0 but for the default


def _intake(derive: Callable[[], NewOperation]) -> tuple[NewOperation | None, str | None]:
    """The new operation, or the code of the 4xx intake answers instead."""
    try:
        new = derive()
        refusal = KINDS[new.kind].refuse(new)
        if refusal is not None:
            raise refusal
    except PaysysError as refused:
        return None, refused.code
    return new, None


class Run:
    """One tenant's rounds on the scratch ledger, and the model they must agree with."""

    def __init__(self, conn: Conn):
        self.conn = conn
        self.tenant = Tenant(conn)
        self.wallets = self.tenant.wallets
        self.model: LedgerModel[uuid.UUID] = LedgerModel(dict.fromkeys(self.wallets, 0))
        self.epoch = datetime.now(UTC) - timedelta(days=1)
        self.accepted: list[uuid.UUID] = []  # in acceptance order, expiries included
        self.holds: list[uuid.UUID] = []
        self.reversible: list[uuid.UUID] = []  # succeeded in earlier rounds
        self.applied: list[uuid.UUID] = []
        self.drains = 0
        # When each operation was accepted, where seq does not tell: the expiries enqueued
        # by one sweep are accepted at once, in one statement (each wallet's in position
        # order, checked apart), whatever order their seq numbers came in.
        self.accepted_with: dict[uuid.UUID, int] = {}

    # --- accepting --------------------------------------------------------------------

    def accept_round(self, number: int, steps: list[Step]) -> None:
        operations = self.model.operations
        self.reversible = [
            key
            for key in self.accepted
            if operations[key].kind in REVERSIBLE and operations[key].status == "succeeded"
        ]
        with self.conn, self.conn.cursor() as cur:
            for index, one in enumerate(steps):
                at = self.epoch + timedelta(seconds=number * ROUND_SECONDS + index)
                self._submit(cur, one, at)

    def _submit(self, cur: Any, one: Step, at: datetime) -> None:
        """Derive the request's operation as its route does, and record it unless intake
        refuses it (as the model says it must)."""
        model, expires_at, expected = self.model, None, None
        if one.kind in ("capture", "void"):
            if not self.holds:
                return
            hold = self.holds[-1 - one.first % len(self.holds)]
            amount = _share(model.operations[hold].amount, one.amount)
            expected = model.refusal(one.kind, hold, amount or None)
            operation = Operation[uuid.UUID](one.kind, amount, hold=hold, created_at=at)

            def derive() -> NewOperation:
                row = self.tenant.hold_row(cur, hold)
                if one.kind == "void":
                    return Void.new(VoidCreate(), row)
                return Capture.new(CaptureCreate.model_validate(_body(amount=amount)), row)

        elif one.kind == "reversal":
            targets = self.accepted if one.any_target else self.reversible
            if one.second is not None:  # of one kind, if there is one to reverse
                kind = REVERSIBLE[one.second]
                targets = [t for t in targets if model.operations[t].kind == kind] or targets
            if not targets:
                return
            original = targets[-1 - one.first % len(targets)]
            amount = _share(model.operations[original].amount, one.amount)
            expected = model.refusal("reversal", original, amount or None)
            operation = Operation("reversal", amount, original=original, created_at=at)

            def derive() -> NewOperation:
                body = ReversalCreate.model_validate(_body(amount=amount))
                return Reversal.new(body, self.tenant.operation_row(cur, original))

        else:
            first = self.wallets[one.first]
            second = None if one.second is None else self.wallets[one.second]
            if one.kind in ("replenishment", "withdrawal"):
                operation = Operation(one.kind, one.amount, wallet=first, created_at=at)
            else:
                operation = Operation(
                    one.kind, one.amount, source=first, destination=second, created_at=at
                )
            if one.kind == "hold":
                expires_at = at + timedelta(seconds=one.expires_in)

            def derive() -> NewOperation:
                if one.kind == "replenishment":
                    return Replenishment.new(
                        ReplenishmentCreate.model_validate(_body(amount=one.amount)), first
                    )
                if one.kind == "withdrawal":
                    return Withdrawal.new(
                        WithdrawalCreate.model_validate(_body(amount=one.amount)), first
                    )
                wallets = {
                    "from_wallet_id": str(first),
                    "to_wallet_id": None if second is None else str(second),
                }
                if one.kind == "transfer":
                    return Transfer.new(
                        TransferCreate.model_validate(_body(**wallets, amount=one.amount))
                    )
                return Hold.new(
                    HoldCreate.model_validate(
                        _body(**wallets, amount=one.amount, expires_in=one.expires_in)
                    )
                )

        new, refused = _intake(derive)
        assert refused == expected, (one, f"intake: {refused}, the model: {expected}")
        if new is None:
            event(f"{one.kind} refused {refused}")
            return
        key = self.tenant.record(cur, new, at)
        self.model.accept(key, operation, expires_at)
        self.accepted.append(key)
        if one.kind == "hold":
            self.holds.append(key)

    # --- applying ---------------------------------------------------------------------

    def drain(self, max_ops: int, sweep_every: int = 0, in_acceptance_order: bool = False) -> None:
        """Drain until nothing is left; the model applies what each drain applied, in its
        order, and must agree on each outcome."""

        def check(outcomes: list[Applied]) -> None:
            mine = [o for o in outcomes if o[0].tenant_id == self.tenant.id]
            if in_acceptance_order:
                seqs = [self.accepted_with.get(op.id, op.seq) for op, _, _ in mine]
                assert seqs == sorted(seqs), "one drain, but not in acceptance order"
            for operation, status, error in mine:
                expected = self.model.apply(operation.id)
                assert (status, error) == expected, (
                    f"{operation.type} {operation.id}: drained {status} {error}, the model "
                    f"says {expected}: {self.model.operations[operation.id]}"
                )
                self.applied.append(operation.id)
                kind = operation.type
                if operation.reverses_operation_id is not None:
                    kind += f" of {self.model.operations[operation.reverses_operation_id].kind}"
                event(f"{kind} {status} {error or ''}".strip())
            self.drains += 1
            if sweep_every and self.drains % sweep_every == 0:
                self.sweep()

        drain_all(self.conn, max_ops, check)

    def sweep(self) -> int:
        """The sweeper's pass: it must enqueue the expiry of exactly the holds the model
        has held past their expiry, at the end of each source wallet's queue."""
        due = self.model.due_holds(datetime.now(UTC))
        sweep(self.conn)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT id, hold_id, seq FROM operation "
                "WHERE tenant_id = %s AND type = 'expiry' AND NOT id = ANY(%s) ORDER BY position",
                (self.tenant.id, self.accepted),
            )
            enqueued = cur.fetchall()
        assert {hold for _, hold, _ in enqueued} == due, "the sweeper's expiries"
        for key, hold, _ in enqueued:
            self.model.accept(key, Operation("expiry", hold=hold))
            self.accepted.append(key)
            self.accepted_with[key] = min(seq for _, _, seq in enqueued)
        return len(enqueued)

    def finish(self, max_ops: int) -> None:
        """Drain what is left, then sweep and drain until every hold past its expiry is
        released."""
        self.drain(max_ops)
        while self.sweep():
            self.drain(max_ops)

    # --- the outcome ------------------------------------------------------------------

    def check(self) -> None:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT id, type, status, error_code, amount, wallet_id, from_wallet_id, "
                "to_wallet_id, hold_id, reverses_operation_id, reversed_amount, "
                "queue_wallet_id, position FROM operation WHERE tenant_id = %s",
                (self.tenant.id,),
            )
            rows = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute("SELECT id, balance, held FROM wallet WHERE id = ANY(%s)", (self.wallets,))
            wallets = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute(
                "SELECT o.id, COALESCE(h.status, o.status), h.captured_amount "
                "FROM operation o LEFT JOIN hold h ON h.id = o.id "
                "WHERE o.tenant_id = %s AND o.type = 'hold'",
                (self.tenant.id,),
            )
            holds = {row[0]: row[1:] for row in cur.fetchall()}
        for hold in self.model.holds.values():
            part = hold.captured_amount is not None and hold.captured_amount < hold.amount
            event(f"hold ends {hold.status}{' in part' if part else ''}")
        for operation in self.model.operations.values():
            if operation.reversed_amount > 0:
                full = operation.reversed_amount == operation.amount
                event(f"{operation.kind} reversed {'in full' if full else 'in part'}")
        with self.conn, self.conn.cursor() as cur:
            findings = [finding.check.name for finding in audit.run(cur)]

        model = self.model
        assert set(rows) == set(self.accepted) == set(model.operations)
        assert sorted(Counter(self.applied).values()) == [1] * len(self.accepted), "once each"
        for key, operation in model.operations.items():
            assert rows[key][:10] == (
                operation.kind,
                operation.status,
                operation.error,
                operation.amount,
                operation.wallet,
                operation.source,
                operation.destination,
                operation.hold,
                operation.original,
                operation.reversed_amount,
            ), key
            assert rows[key][10] == model.queue(operation), key
        # Each queue in acceptance order, and applied in that order.
        for queue in self.wallets:
            accepted = [key for key in self.accepted if rows[key][10] == queue]
            assert accepted == sorted(accepted, key=lambda key: rows[key][11]), "positions"
            assert [key for key in self.applied if rows[key][10] == queue] == accepted
        for wallet_id in self.wallets:
            balance, held = wallets[wallet_id]
            assert (balance, held) == (model.balances[wallet_id], model.held[wallet_id])
            assert balance - held == model.available(wallet_id) >= 0
        assert holds == {
            key: (hold.status, hold.captured_amount) for key, hold in model.holds.items()
        }
        assert findings == []


def _opened(plan: list[list[Step]], opening: list[int]) -> list[list[Step]]:
    first = [Step("replenishment", w, None, amount) for w, amount in enumerate(opening)]
    return [first + plan[0], *plan[1:]]


# Examples enough to meet every outcome of every kind in each test (see
# --hypothesis-show-statistics), in some fifteen seconds for both.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(SETTINGS, max_examples=80)
@given(plan=rounds, opening=opening)
def test_one_big_drain_per_round_applies_in_acceptance_order_like_the_model(
    ledger_db: Conn, plan: list[list[Step]], opening: list[int]
) -> None:
    run = Run(ledger_db)
    for number, steps in enumerate(_opened(plan, opening)):
        run.accept_round(number, steps)
        run.drain(max_ops=1_000, in_acceptance_order=True)
        run.sweep()  # its expiries are applied with the next round
    run.finish(max_ops=1_000)
    run.check()


# A capture (or void) accepted before its hold's expiry, still pending when the sweeper
# enqueues the release behind it: the capture is applied first, and the release then
# finds the hold ended and leaves it alone. One drain each (max_ops=1), the hold applied
# alone (the replenishment between them is another wallet's), a sweep after every drain.
BEHIND_A_CAPTURE = [
    [Step("hold", 0, 1, 500, 10), Step("replenishment", 2, None, 100), Step("capture", 0)],
    [Step("replenishment", 3, None, 100)],
]


@settings(SETTINGS, max_examples=50)
@example(plan=BEHIND_A_CAPTURE, opening=[5_000] * WALLETS, max_ops=1, sweep_every=1)
@example(
    plan=[[*BEHIND_A_CAPTURE[0][:2], Step("void", 0)], BEHIND_A_CAPTURE[1]],
    opening=[5_000] * WALLETS,
    max_ops=1,
    sweep_every=1,
)
@given(plan=rounds, opening=opening, max_ops=st.integers(1, 5), sweep_every=st.integers(1, 4))
def test_many_small_drains_with_sweeps_between_agree_with_the_model(
    ledger_db: Conn, plan: list[list[Step]], opening: list[int], max_ops: int, sweep_every: int
) -> None:
    run = Run(ledger_db)
    for number, steps in enumerate(_opened(plan, opening)):
        run.accept_round(number, steps)
        run.drain(max_ops, sweep_every)
    run.finish(max_ops)
    run.check()
