"""The book of one drain: the balances it locked, and what applying its operations writes.

Each operation is applied by its kind (`shared.operations`), through the book's `post`
and `fail`. The book keeps the rules every kind shares, in one place:

* no user wallet goes below zero: a debit it cannot cover is the operation's failure,
  `insufficient_funds`, and nothing of it is written;
* no user wallet goes over `MAX_BALANCE`: such a credit fails with
  `balance_limit_exceeded`;
* each ledger transaction's legs sum to zero (an operation that broke it would be a bug:
  the schema refuses it, and the drain fails that operation as `internal_error`).

If writing a drain fails for a reason of its operations (a constraint, a trigger, a bug),
`Locked.find_faulty` finds the operations at fault by trying ever shorter prefixes, each
in a savepoint that is rolled back; the drain then fails them as `internal_error`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg2

from shared.db import Cursor
from shared.ids import uuid7
from shared.ledger import repository as repo
from shared.ledger.repository import OutcomeRow, PostingRow, WalletState
from shared.money import format_cents
from shared.operations import KINDS
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    FUNDING,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    PendingOperation,
)

INTERNAL_ERROR_MESSAGE = (
    "The operation could not be applied because of an internal error; nothing moved"
)
# 999,999,999,999.99: far below what a BIGINT of cents holds, whatever is added to it.
MAX_BALANCE = 99_999_999_999_999
# A drain that finds more operations at fault than this gives up (and is retried): so
# many at once is a fault of the drain, not of its operations.
MAX_FAULTY_PER_DRAIN = 16
# Failures that say nothing about the operations: the work is retried as it is.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)


class Book:
    """The locked wallets of one drain and the rows the drain will write."""

    def __init__(self, wallets: dict[uuid.UUID, WalletState], funding: WalletState | None):
        # Every locked wallet by id, the funding wallet included (under its own id).
        self.wallets = wallets if funding is None else {**wallets, funding.id: funding}
        self.funding = funding
        self.touched: set[uuid.UUID] = set()
        self.transactions: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        self.postings: list[PostingRow] = []
        self.outcomes: list[OutcomeRow] = []

    def _wallet(self, wallet_id: uuid.UUID) -> WalletState:
        if wallet_id == FUNDING:
            assert self.funding is not None, "a kind that uses funding says so"
            return self.funding
        return self.wallets[wallet_id]

    def balance(self, wallet_id: uuid.UUID) -> int:
        return self._wallet(wallet_id).balance

    def post(self, operation: PendingOperation, legs: list[tuple[uuid.UUID, int]]) -> None:
        for wallet_id, amount in legs:
            if wallet_id == FUNDING:
                continue
            after = self.wallets[wallet_id].balance + amount
            if after < 0:
                self.fail(
                    operation,
                    INSUFFICIENT_FUNDS,
                    f"The source wallet's balance ({format_cents(after - amount)}) "
                    f"does not cover {format_cents(-amount)}",
                )
                return
            if after > MAX_BALANCE:
                self.fail(
                    operation,
                    BALANCE_LIMIT_EXCEEDED,
                    f"The credit would take the wallet above {format_cents(MAX_BALANCE)}",
                )
                return
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

    def fail(self, operation: PendingOperation, code: str, message: str) -> None:
        self.outcomes.append((operation.id, "failed", code, message))


def apply(
    operations: list[PendingOperation],
    wallets: dict[uuid.UUID, WalletState],
    funding: WalletState | None,
    faulty: frozenset[uuid.UUID] = frozenset(),
) -> Book:
    """Decide each operation's outcome, in order, against the locked balances (which it
    updates). Operations in `faulty` fail with `internal_error`."""
    book = Book(wallets, funding)
    for operation in operations:
        if operation.id in faulty:
            book.fail(operation, INTERNAL_ERROR, INTERNAL_ERROR_MESSAGE)
        else:
            KINDS[operation.type].apply(operation, book)
    return book


@dataclass(slots=True)
class Locked:
    """What a drain claimed and locked: its operations, in application order, and the
    balances as they were when locked (each attempt to apply starts from these)."""

    operations: list[PendingOperation]
    wallets: list[tuple[uuid.UUID, int, int]]
    funding: tuple[uuid.UUID, int, int] | None

    def write(
        self, cur: Cursor, count: int | None = None, faulty: frozenset[uuid.UUID] = frozenset()
    ) -> Book:
        """Apply the first `count` operations (all by default) and write the outcome."""
        operations = self.operations if count is None else self.operations[:count]
        wallets = {w[0]: WalletState(*w) for w in self.wallets}
        funding = WalletState(*self.funding) if self.funding is not None else None
        book = apply(operations, wallets, funding, faulty)
        if book.transactions:
            repo.insert_transactions(cur, book.transactions)
            repo.insert_postings(cur, book.postings)
            touched = [book.wallets[w] for w in book.touched]
            repo.update_wallets(cur, [(w.id, w.balance, w.entry_count) for w in touched])
        if book.outcomes:
            completed = repo.complete_operations(cur, book.outcomes)
            if completed != len(book.outcomes):
                # Someone else completed one of them: never write its postings twice.
                raise RuntimeError(
                    f"expected to complete {len(book.outcomes)} operations, completed {completed}"
                )
        return book

    def attempt(
        self, cur: Cursor, count: int | None = None, faulty: frozenset[uuid.UUID] = frozenset()
    ) -> Exception | None:
        """Whether `write` would succeed: tried in a savepoint, always rolled back."""
        cur.execute("SAVEPOINT attempt")
        try:
            self.write(cur, count, faulty)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            return exc
        finally:
            cur.execute("ROLLBACK TO SAVEPOINT attempt")
        return None

    def find_faulty(self, cur: Cursor, error: Exception) -> dict[uuid.UUID, Exception]:
        """The operations that make writing fail, each with its error: the shortest failing
        prefix ends with one; fail it, and look again until the whole drain writes."""
        faulty: dict[uuid.UUID, Exception] = {}
        while True:
            ok, failing = 0, len(self.operations)  # a prefix of `failing` is known to fail
            while failing - ok > 1:
                middle = (ok + failing) // 2
                exc = self.attempt(cur, middle, frozenset(faulty))
                if exc is None:
                    ok = middle
                else:
                    failing, error = middle, exc
            culprit = self.operations[failing - 1]
            if culprit.id in faulty or len(faulty) >= MAX_FAULTY_PER_DRAIN:
                raise error  # failing it does not help: not the operation's fault
            faulty[culprit.id] = error
            next_error = self.attempt(cur, None, frozenset(faulty))
            if next_error is None:
                return faulty
            error = next_error
