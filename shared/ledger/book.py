"""The book of one drain: the balances it locked, and what applying its operations writes.

Each operation is applied by its kind (`shared.operations`), through the book. The book
keeps the rules every kind shares, in one place:

* no user wallet's available balance (balance less its active holds) goes below zero: a
  debit it cannot cover is the operation's failure, `insufficient_funds`, and nothing of
  it is written;
* no user wallet goes over `MAX_BALANCE`: such a credit fails with
  `balance_limit_exceeded`;
* each ledger transaction's legs sum to zero (an operation that broke it would be a bug:
  the schema refuses it, and the drain fails that operation as `internal_error`).
"""

from __future__ import annotations

import uuid

from shared.ids import uuid7
from shared.ledger.repository import OutcomeRow, PostingRow, WalletState
from shared.money import format_cents
from shared.operations import KINDS
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    FUNDING,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    HoldState,
    PendingOperation,
    ReversedState,
)

INTERNAL_ERROR_MESSAGE = (
    "The operation could not be applied because of an internal error; nothing moved"
)
# 999,999,999,999.99: far below what a BIGINT of cents holds, whatever is added to it.
MAX_BALANCE = 99_999_999_999_999


class Book:
    """The locked wallets (and holds, and reversed operations) of one drain, and the rows
    the drain will write."""

    def __init__(
        self,
        wallets: dict[uuid.UUID, WalletState],
        funding: WalletState | None,
        holds: dict[uuid.UUID, HoldState] | None = None,
        reversed_operations: dict[uuid.UUID, ReversedState] | None = None,
    ):
        # Every locked wallet by id, the funding wallet included (under its own id).
        self.wallets = wallets if funding is None else {**wallets, funding.id: funding}
        self.funding = funding
        self.holds = holds or {}
        self.reversed_operations = reversed_operations or {}
        self.touched: set[uuid.UUID] = set()
        self.transactions: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        self.postings: list[PostingRow] = []
        self.outcomes: list[OutcomeRow] = []
        self.new_holds: list[uuid.UUID] = []
        self.ended_holds: list[HoldState] = []
        self.reversals: dict[uuid.UUID, ReversedState] = {}

    def _wallet(self, wallet_id: uuid.UUID) -> WalletState:
        if wallet_id == FUNDING:
            assert self.funding is not None, "a kind that uses funding says so"
            return self.funding
        return self.wallets[wallet_id]

    def balance(self, wallet_id: uuid.UUID) -> int:
        return self._wallet(wallet_id).balance

    def available(self, wallet_id: uuid.UUID) -> int:
        wallet = self._wallet(wallet_id)
        return wallet.balance - wallet.held

    def post(
        self,
        operation: PendingOperation,
        legs: list[tuple[uuid.UUID, int]],
        release: tuple[uuid.UUID, int] | None = None,
    ) -> bool:
        """Write the operation's transaction; `release`, a hold given back in the same
        step (a capture), counts as available for the debit it covers."""
        for wallet_id, amount in legs:
            if wallet_id == FUNDING:
                continue
            wallet = self.wallets[wallet_id]
            freed = release[1] if release is not None and release[0] == wallet_id else 0
            if amount < 0 and wallet.balance - wallet.held + freed + amount < 0:
                self.fail(
                    operation,
                    INSUFFICIENT_FUNDS,
                    f"The wallet's available balance "
                    f"({format_cents(wallet.balance - wallet.held + freed)}) "
                    f"does not cover {format_cents(-amount)}",
                )
                return False
            if wallet.balance + amount > MAX_BALANCE:
                self.fail(
                    operation,
                    BALANCE_LIMIT_EXCEEDED,
                    f"The credit would take the wallet above {format_cents(MAX_BALANCE)}",
                )
                return False
        if release is not None:
            self.release(*release)
        transaction_id = uuid7()
        self.transactions.append((transaction_id, operation.id, operation.type))
        for wallet_id, amount in legs:
            wallet = self._wallet(wallet_id)
            wallet.balance += amount
            wallet.entry_count += 1
            self.touched.add(wallet.id)
            self.postings.append(
                (uuid7(), transaction_id, wallet.id, wallet.entry_count, amount, wallet.balance)
            )
        self.outcomes.append((operation.id, "succeeded", None, None))
        return True

    def fail(self, operation: PendingOperation, code: str, message: str) -> None:
        self.outcomes.append((operation.id, "failed", code, message))

    def succeed(self, operation: PendingOperation) -> None:
        self.outcomes.append((operation.id, "succeeded", None, None))

    def reserve(self, wallet_id: uuid.UUID, amount: int) -> None:
        self.wallets[wallet_id].held += amount
        self.touched.add(wallet_id)

    def release(self, wallet_id: uuid.UUID, amount: int) -> None:
        self.wallets[wallet_id].held -= amount
        self.touched.add(wallet_id)

    def hold(self, hold_id: uuid.UUID) -> HoldState:
        return self.holds[hold_id]

    def create_hold(self, operation: PendingOperation) -> None:
        """The hold operation succeeded: its hold exists, held."""
        self.new_holds.append(operation.id)
        if operation.id in self.holds:  # a capture or void later in this drain names it
            self.holds[operation.id].status = "held"
            self.holds[operation.id].operation_status = "succeeded"

    def end_hold(self, hold: HoldState, status: str, captured_amount: int | None = None) -> None:
        hold.status, hold.captured_amount = status, captured_amount
        self.ended_holds.append(hold)

    def reversed(self, operation_id: uuid.UUID) -> ReversedState:
        state = self.reversed_operations[operation_id]
        self.reversals[operation_id] = state
        return state


def apply(
    operations: list[PendingOperation],
    wallets: dict[uuid.UUID, WalletState],
    funding: WalletState | None,
    faulty: frozenset[uuid.UUID] = frozenset(),
    holds: dict[uuid.UUID, HoldState] | None = None,
    reversed_operations: dict[uuid.UUID, ReversedState] | None = None,
) -> Book:
    """Decide each operation's outcome, in order, against the locked balances (which it
    updates). Operations in `faulty` fail with `internal_error`."""
    book = Book(wallets, funding, holds, reversed_operations)
    for operation in operations:
        if operation.id in faulty:
            book.fail(operation, INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)
        else:
            KINDS[operation.type].apply(operation, book)
    return book
