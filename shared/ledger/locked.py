"""Writing a drain, and finding the operations at fault when the database refuses it.

A drain's claims and locks are taken once (`Locked`); applying its operations is computed
afresh from the balances as locked, so it can be tried again. If writing fails for a
reason of its operations (a constraint, a trigger, a bug), `Locked.find_faulty` finds the
operations at fault by trying ever shorter prefixes, each in a savepoint that is rolled
back; the drain then fails them as `internal_error`. A lost connection or a lock conflict
is not such a reason: it is raised, and the drain is retried whole.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import psycopg2

from shared.db import Cursor
from shared.ledger import named
from shared.ledger import repository as repo
from shared.ledger.book import Book, apply
from shared.ledger.repository import WalletState
from shared.operations.kind import HoldState, PendingOperation, ReversedState

# A drain that finds more operations at fault than this gives up (and is retried): so
# many at once is a fault of the drain, not of its operations.
MAX_FAULTY_PER_DRAIN = 16
# Failures that say nothing about the operations: the work is retried as it is.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg2.OperationalError, psycopg2.InterfaceError)


@dataclass(slots=True)
class Locked:
    """What a drain claimed and locked: its operations, in application order, and the
    balances as they were when locked (each attempt to apply starts from these)."""

    operations: list[PendingOperation]
    wallets: list[WalletState]
    funding: WalletState | None
    holds: list[HoldState]
    reversed_operations: list[ReversedState]
    # The drain's feed key, written on the wallets it changes (see shared/events/outbox.py).
    event_xid: int

    def write(
        self, cur: Cursor, count: int | None = None, faulty: frozenset[uuid.UUID] = frozenset()
    ) -> Book:
        """Apply the first `count` operations (all by default) and write the outcome."""
        operations = self.operations if count is None else self.operations[:count]
        book = apply(
            operations,
            {w.id: replace(w) for w in self.wallets},
            replace(self.funding) if self.funding is not None else None,
            faulty,
            {h.id: replace(h) for h in self.holds},
            {o.id: replace(o) for o in self.reversed_operations},
        )
        _write(cur, book, self.event_xid)
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


def _write(cur: Cursor, book: Book, event_xid: int) -> None:
    if book.transactions:
        repo.insert_transactions(cur, book.transactions)
        repo.insert_postings(cur, book.postings)
    if book.new_holds:
        named.insert_holds(cur, book.new_holds)
    if book.ended_holds:
        named.update_holds(cur, book.ended_holds)
    if book.reversals:
        named.update_reversed(cur, list(book.reversals.values()))
    if book.touched:
        repo.update_wallets(cur, [book.wallets[w] for w in book.touched], event_xid)
    if book.outcomes:
        completed = repo.complete_operations(cur, book.outcomes)
        if completed != len(book.outcomes):
            # Someone else completed one of them: never write its postings twice.
            raise RuntimeError(
                f"expected to complete {len(book.outcomes)} operations, completed {completed}"
            )
