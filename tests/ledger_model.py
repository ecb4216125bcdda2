"""The ledger in plain arithmetic: what the ledger service must agree with.

Written from API.md ("Operations", "Withdrawals, holds and reversals"), not from the
service's code: balances, held amounts, holds and reversed amounts as dictionaries, and
each kind of operation as the few lines of arithmetic the contract describes. The tests
apply operations to it in the order the service applied them, and compare every outcome
and every amount.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

Wallet = TypeVar("Wallet", bound=Hashable)

# 999,999,999,999.99, in cents: no user wallet goes above it.
MAX_BALANCE = 99_999_999_999_999
REVERSIBLE = ("transfer", "replenishment", "withdrawal", "capture")


@dataclass
class Operation(Generic[Wallet]):
    """An accepted operation. `source`/`destination` are where money leaves and arrives
    (None: the funding side); a replenishment or withdrawal names its `wallet`. A capture's
    or reversal's `amount` is 0 when the request left it out, for its default."""

    kind: str
    amount: int = 0
    wallet: Wallet | None = None
    source: Wallet | None = None
    destination: Wallet | None = None
    hold: Hashable | None = None  # captures, voids, expiries: the hold's id
    original: Hashable | None = None  # reversals: the operation reversed
    created_at: datetime | None = None
    expires_at: datetime | None = None  # holds
    status: str = "pending"
    error: str | None = None
    reversed_amount: int = 0


@dataclass
class Hold(Generic[Wallet]):
    source: Wallet
    destination: Wallet | None
    amount: int
    expires_at: datetime | None
    # pending, then held or failed (its hold operation's outcome); a held hold then ends
    # captured, voided or expired.
    status: str = "pending"
    captured_amount: int | None = None
    expiry_enqueued: bool = False


class LedgerModel(Generic[Wallet]):
    def __init__(self, balances: dict[Wallet, int]):
        self.balances = balances  # shared with the caller, who may read it as it changes
        self.held: dict[Wallet, int] = dict.fromkeys(balances, 0)
        self.operations: dict[Hashable, Operation[Wallet]] = {}
        self.holds: dict[Hashable, Hold[Wallet]] = {}

    def available(self, wallet: Wallet) -> int:
        return self.balances[wallet] - self.held[wallet]

    # --- intake -----------------------------------------------------------------------

    def refusal(self, kind: str, target: Hashable | None, amount: int | None) -> str | None:
        """The code of a 4xx that intake answers to a capture or a reversal, if any: a
        capture above its hold's amount, a reversal of anything but a succeeded transfer,
        replenishment, withdrawal or capture, or one of what is left when nothing is."""
        if kind == "capture":
            assert target is not None
            if amount is not None and amount > self.operations[target].amount:
                return "validation_error"
        if kind == "reversal":
            assert target is not None
            original = self.operations[target]
            if original.kind not in REVERSIBLE or original.status != "succeeded":
                return "not_reversible"
            if amount is None and original.reversed_amount == original.amount:
                return "not_reversible"
        return None

    def accept(
        self, key: Hashable, operation: Operation[Wallet], expires_at: datetime | None = None
    ) -> Operation[Wallet]:
        """Record an accepted operation. A capture's or void's wallets and default amount
        come from its hold, a reversal's from what it reverses."""
        if operation.kind == "hold":
            assert operation.source is not None
            operation.expires_at = expires_at
            self.holds[key] = Hold(
                operation.source, operation.destination, operation.amount, expires_at
            )
        elif operation.kind in ("capture", "void", "expiry"):
            hold = self.holds[operation.hold]
            operation.source, operation.destination = hold.source, hold.destination
            if operation.kind != "capture" or not operation.amount:
                operation.amount = hold.amount
            if operation.kind == "expiry":
                hold.expiry_enqueued = True
        elif operation.kind == "reversal":
            original = self.operations[operation.original]
            if not operation.amount:
                operation.amount = original.amount - original.reversed_amount
            # A transfer's or capture's reversal debits its destination and credits its
            # source; a replenishment's debits the wallet, a withdrawal's credits it.
            if original.kind == "replenishment":
                operation.source, operation.destination = original.wallet, None
            elif original.kind == "withdrawal":
                operation.source, operation.destination = None, original.wallet
            else:
                operation.source, operation.destination = original.destination, original.source
        self.operations[key] = operation
        return operation

    @staticmethod
    def queue(operation: Operation[Wallet]) -> Wallet:
        """The wallet whose queue it joins: the one it debits (a hold's or void's source),
        else, when that is the funding side, the one it credits."""
        for queue in (operation.wallet, operation.source, operation.destination):
            if queue is not None:
                return queue
        raise AssertionError(f"names no wallet: {operation}")

    def due_holds(self, now: datetime) -> set[Hashable]:
        """Holds the sweeper must enqueue the expiry of: held past their expiry."""
        return {
            key
            for key, hold in self.holds.items()
            if hold.status == "held"
            and hold.expires_at is not None
            and hold.expires_at <= now
            and not hold.expiry_enqueued
        }

    # --- application ------------------------------------------------------------------

    def apply(self, key: Hashable) -> tuple[str, str | None]:
        """Apply an accepted operation; its outcome: (status, error code)."""
        operation = self.operations[key]
        assert operation.status == "pending", f"applied twice: {operation}"
        error = getattr(self, f"_{operation.kind}")(key, operation)
        operation.status, operation.error = ("failed", error) if error else ("succeeded", None)
        return operation.status, operation.error

    def _move(self, debited: Wallet | None, credited: Wallet | None, amount: int) -> str | None:
        """Money from one side to the other, each of which may be the funding side."""
        if debited is not None and self.available(debited) < amount:
            return "insufficient_funds"
        if credited is not None and self.balances[credited] + amount > MAX_BALANCE:
            return "balance_limit_exceeded"
        if debited is not None:
            self.balances[debited] -= amount
        if credited is not None:
            self.balances[credited] += amount
        return None

    def _replenishment(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        return self._move(None, operation.wallet, operation.amount)

    def _withdrawal(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        return self._move(operation.wallet, None, operation.amount)

    def _transfer(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        return self._move(operation.source, operation.destination, operation.amount)

    def _hold(self, key: Hashable, operation: Operation[Wallet]) -> str | None:
        hold = self.holds[key]
        if self.available(hold.source) < hold.amount:
            hold.status = "failed"
            return "insufficient_funds"
        self.held[hold.source] += hold.amount
        hold.status = "held"
        return None

    def _ending(self, operation: Operation[Wallet]) -> tuple[Hold[Wallet] | None, str | None]:
        """The hold a capture or void ends, or why it cannot: `hold_expired` when accepted
        at or after its expiry, whatever its status; else `hold_not_active`."""
        hold = self.holds[operation.hold]
        assert operation.created_at is not None and hold.expires_at is not None
        if operation.created_at >= hold.expires_at:
            return None, "hold_expired"
        if hold.status != "held":
            return None, "hold_not_active"
        return hold, None

    def _capture(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        hold, error = self._ending(operation)
        if hold is None:
            return error
        self.held[hold.source] -= hold.amount  # the whole hold is released ...
        error = self._move(hold.source, hold.destination, operation.amount)
        if error:
            self.held[hold.source] += hold.amount  # ... unless the capture fails
            return error
        hold.status, hold.captured_amount = "captured", operation.amount
        return None

    def _void(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        hold, error = self._ending(operation)
        if hold is None:
            return error
        self.held[hold.source] -= hold.amount
        hold.status = "voided"
        return None

    def _expiry(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        hold = self.holds[operation.hold]
        if hold.status == "held":  # captured or voided meanwhile: nothing to release
            self.held[hold.source] -= hold.amount
            hold.status = "expired"
        return None

    def _reversal(self, _: Hashable, operation: Operation[Wallet]) -> str | None:
        original = self.operations[operation.original]
        if original.reversed_amount + operation.amount > original.amount:
            return "reversal_exceeds_amount"
        error = self._move(operation.source, operation.destination, operation.amount)
        if error:
            return error
        original.reversed_amount += operation.amount
        return None


def model_outcomes(
    plan: Sequence[tuple[str, Wallet, Wallet | None, int]], balances: dict[Wallet, int]
) -> list[str]:
    """Apply the plan's replenishments and transfers, in order, to `balances` (in place);
    return each one's outcome. A transfer its source cannot cover fails and moves nothing."""
    model = LedgerModel(balances)
    outcomes = []
    for n, (kind, first, second, amount) in enumerate(plan):
        if kind == "replenishment":
            model.accept(n, Operation(kind, amount, wallet=first))
        else:
            model.accept(n, Operation(kind, amount, source=first, destination=second))
        outcomes.append(model.apply(n)[0])
    return outcomes
