"""The schema refuses a broken ledger of withdrawals, holds and reversals by itself
(migration 0003): raw writes that bypass the service, each breaking one rule, are refused
by the constraint or trigger that states it, and the correct write next to it is not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from shared.ids import uuid7
from tests.raw_ledger import FUNDING, Conn, Ledger, scratch_connection

FAR = "now() + interval '7 days'"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Conn]:
    """One scratch database for the module: each test writes under a tenant of its own,
    and what the schema refuses leaves nothing behind."""
    yield from scratch_connection()


def refused_by(conn: Conn, constraint: str, statement: str, *args: object) -> None:
    """Run a statement in a transaction of its own: the named constraint or trigger (not
    some other rule) must refuse it."""
    with pytest.raises(psycopg2.Error) as info, conn, conn.cursor() as cur:
        cur.execute(statement, args)
    assert info.value.diag.constraint_name == constraint, str(info.value)


def refused_insert(conn: Conn, constraint: str, insert: tuple[str, tuple[object, ...]]) -> None:
    refused_by(conn, constraint, insert[0], *insert[1])


class MoneyOut(Ledger):
    """Operations of every kind, holds, and the postings of a succeeded operation."""

    def insert(
        self,
        kind: str,
        amount: int = 100,
        *,
        wallet: uuid.UUID | None = None,
        source: uuid.UUID | None = None,
        destination: uuid.UUID | None = None,
        hold: uuid.UUID | None = None,
        reverses: uuid.UUID | None = None,
        batch: uuid.UUID | None = None,
        expires: bool | None = None,
        reversed_amount: int = 0,
    ) -> tuple[str, tuple[object, ...]]:
        """The INSERT of an operation, at the next position of its queue; `expires`
        defaults to what its kind needs (only holds have an expiry)."""
        expires = kind == "hold" if expires is None else expires
        op = uuid7()
        queue = wallet or source or destination
        statement = (
            "INSERT INTO operation (id, tenant_id, type, amount, currency, wallet_id, "
            "from_wallet_id, to_wallet_id, hold_id, reverses_operation_id, batch_id, "
            "reversed_amount, expires_at, position) "
            "VALUES (%s, %s, %s, %s, 'USD', %s, %s, %s, %s, %s, %s, %s, "
            f"{FAR if expires else 'NULL'}, "
            "(SELECT COALESCE(max(position), 0) + 1 FROM operation WHERE queue_wallet_id = %s))"
        )
        args = (op, self.tenant, kind, amount, wallet, source, destination, hold, reverses)
        return statement, (*args, batch, reversed_amount, queue)

    def record(self, kind: str, amount: int = 100, **columns: Any) -> uuid.UUID:
        statement, args = self.insert(kind, amount, **columns)
        self.sql(statement, *args)
        op = args[0]
        assert isinstance(op, uuid.UUID)
        return op

    def complete(self, op: uuid.UUID, status: str = "succeeded") -> None:
        """Mark a kind that moves no money (a hold, void, expiry), or any failure, final."""
        error = None if status == "succeeded" else "insufficient_funds"
        self.sql(
            "UPDATE operation SET status = %s, error_code = %s, completed_at = now() WHERE id = %s",
            status,
            error,
            op,
        )

    def post(self, op: uuid.UUID, kind: str, legs: list[tuple[uuid.UUID, int]]) -> None:
        """The operation's ledger transaction, written correctly, its balances updated and
        the operation marked succeeded, in one database transaction."""
        txn = uuid7()
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, %s)",
                (txn, op, kind),
            )
            rows = []
            for wallet, amount in legs:
                cur.execute("SELECT balance, entry_count FROM wallet WHERE id = %s", (wallet,))
                balance, entries = cur.fetchone()  # type: ignore[misc]
                rows.append((uuid7(), txn, wallet, entries + 1, amount, balance + amount))
            # One statement: the double-entry trigger checks each statement's postings.
            values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
            cur.execute(
                "INSERT INTO posting (id, transaction_id, wallet_id, entry_no, amount, "
                f"balance_after) VALUES {values}",
                [value for row in rows for value in row],
            )
            for _, _, wallet, entry_no, _, balance_after in rows:
                cur.execute(
                    "UPDATE wallet SET balance = %s, entry_count = %s WHERE id = %s",
                    (balance_after, entry_no, wallet),
                )
            cur.execute(
                "UPDATE operation SET status = 'succeeded', completed_at = now() WHERE id = %s",
                (op,),
            )

    def funded(self, amount: int) -> uuid.UUID:
        wallet = self.wallet()
        self.post(
            self.record("replenishment", amount, wallet=wallet),
            "replenishment",
            [(FUNDING, -amount), (wallet, amount)],
        )
        return wallet

    def hold(
        self, source: uuid.UUID, amount: int = 100, destination: uuid.UUID | None = None
    ) -> uuid.UUID:
        """A hold operation that succeeded, and its hold, held (the source's `held` is
        left alone: the hold table and the wallet are checked apart)."""
        op = self.record("hold", amount, source=source, destination=destination)
        self.complete(op)
        self.sql(
            "INSERT INTO hold (id, tenant_id, from_wallet_id, to_wallet_id, amount, expires_at) "
            "SELECT id, tenant_id, from_wallet_id, to_wallet_id, amount, expires_at "
            "FROM operation WHERE id = %s",
            op,
        )
        return op


@pytest.fixture
def ledger(scratch: Conn) -> MoneyOut:
    return MoneyOut(scratch)


# --- held, available ------------------------------------------------------------------


def test_held_is_never_negative(scratch: Conn, ledger: MoneyOut) -> None:
    wallet = ledger.funded(500)
    refused_by(
        scratch,
        "ck_wallet_held_non_negative",
        "UPDATE wallet SET held = -1 WHERE id = %s",
        wallet,
    )


def test_available_is_never_negative(scratch: Conn, ledger: MoneyOut) -> None:
    wallet = ledger.funded(500)
    refused_by(
        scratch,
        "ck_wallet_held_within_balance",
        "UPDATE wallet SET held = 501 WHERE id = %s",
        wallet,
    )
    ledger.sql("UPDATE wallet SET held = 500 WHERE id = %s", wallet)  # all of it: available 0
    ledger.sql("UPDATE wallet SET held = 300 WHERE id = %s", wallet)
    # Nor by a debit under what is held: a withdrawal of 201 leaves 299 for 300 held.
    withdrawal = ledger.record("withdrawal", 201, wallet=wallet)
    with pytest.raises(psycopg2.errors.CheckViolation) as info:
        ledger.post(withdrawal, "withdrawal", [(wallet, -201), (FUNDING, 201)])
    assert info.value.diag.constraint_name == "ck_wallet_held_within_balance"
    ledger.post(withdrawal, "withdrawal", [(wallet, -200), (FUNDING, 200)])
    with scratch.cursor() as cur:
        cur.execute("SELECT balance, held FROM wallet WHERE id = %s", (wallet,))
        assert cur.fetchone() == (300, 300)


def test_funding_wallets_hold_nothing(scratch: Conn) -> None:
    refused_by(
        scratch,
        "ck_wallet_funding_holds_nothing",
        "UPDATE wallet SET held = 1 WHERE id = %s",
        FUNDING,
    )


# --- holds ----------------------------------------------------------------------------


def test_a_hold_is_captured_at_most_its_amount(scratch: Conn, ledger: MoneyOut) -> None:
    source = ledger.funded(1_000)
    hold = ledger.hold(source, 300)
    for status, captured in [
        ("captured", 301),  # beyond the amount
        ("captured", 0),
        ("captured", -5),
        ("captured", None),  # captured, but of no amount
        ("voided", 100),  # an amount captured, but not captured
        ("expired", 300),
    ]:
        refused_by(
            scratch,
            "ck_hold_captured_amount",
            "UPDATE hold SET status = %s, captured_amount = %s WHERE id = %s",
            status,
            captured,
            hold,
        )
    # Nor written so from the start.
    other = ledger.record("hold", 300, source=source)
    refused_by(
        scratch,
        "ck_hold_captured_amount",
        "INSERT INTO hold (id, tenant_id, from_wallet_id, amount, status, captured_amount, "
        "expires_at) SELECT id, tenant_id, from_wallet_id, amount, 'captured', 301, expires_at "
        "FROM operation WHERE id = %s",
        other,
    )
    ledger.sql("UPDATE hold SET status = 'captured', captured_amount = 300 WHERE id = %s", hold)


def test_a_hold_ends_once_and_never_changes_again(scratch: Conn, ledger: MoneyOut) -> None:
    source = ledger.funded(1_000)
    destination = ledger.wallet()
    voided, captured, held = (ledger.hold(source, 100, destination) for _ in range(3))
    ledger.sql("UPDATE hold SET status = 'voided' WHERE id = %s", voided)
    ledger.sql("UPDATE hold SET status = 'captured', captured_amount = 40 WHERE id = %s", captured)
    for hold, change in [
        (voided, "status = 'expired'"),
        (voided, "status = 'held'"),  # back to held
        (voided, "updated_at = now()"),
        (captured, "status = 'voided', captured_amount = NULL"),
        (captured, "captured_amount = 50"),
        (captured, "status = 'held', captured_amount = NULL"),
        (held, "updated_at = now()"),  # only ending it changes a held hold
        (held, "status = 'held'"),
        (held, "status = 'voided', amount = 50"),  # ending it, but changing what it was
        (held, "status = 'expired', to_wallet_id = NULL"),
        (held, f"status = 'expired', expires_at = {FAR}"),
    ]:
        refused_by(scratch, "hold_final", f"UPDATE hold SET {change} WHERE id = %s", hold)
    with pytest.raises(psycopg2.Error, match="never deleted"), scratch, scratch.cursor() as cur:
        cur.execute("DELETE FROM hold WHERE id = %s", (voided,))
    ledger.sql("UPDATE hold SET status = 'expired', updated_at = now() WHERE id = %s", held)


# --- reversed amounts -----------------------------------------------------------------


def test_reversed_amount_stays_within_the_amount(scratch: Conn, ledger: MoneyOut) -> None:
    wallet = ledger.funded(500)
    with scratch.cursor() as cur:
        cur.execute("SELECT id FROM operation WHERE wallet_id = %s", (wallet,))
        [(replenishment,)] = cur.fetchall()
    refused_by(
        scratch,
        "ck_operation_reversed_amount",
        "UPDATE operation SET reversed_amount = 501 WHERE id = %s",
        replenishment,
    )
    for reversed_amount in (-1, 501):
        refused_insert(
            scratch,
            "ck_operation_reversed_amount",
            ledger.insert("withdrawal", 500, wallet=wallet, reversed_amount=reversed_amount),
        )
    ledger.sql("UPDATE operation SET reversed_amount = 500 WHERE id = %s", replenishment)


def test_reversed_amount_only_grows_and_only_once_succeeded(
    scratch: Conn, ledger: MoneyOut
) -> None:
    wallet = ledger.funded(500)
    with scratch.cursor() as cur:
        cur.execute("SELECT id FROM operation WHERE wallet_id = %s", (wallet,))
        [(succeeded,)] = cur.fetchall()
    ledger.sql("UPDATE operation SET reversed_amount = 50 WHERE id = %s", succeeded)
    ledger.sql("UPDATE operation SET reversed_amount = 120 WHERE id = %s", succeeded)
    for lower in (119, 0):
        refused_by(
            scratch,
            "operation_final",
            "UPDATE operation SET reversed_amount = %s WHERE id = %s",
            lower,
            succeeded,
        )
    pending = ledger.record("withdrawal", 100, wallet=wallet)
    failed = ledger.record("withdrawal", 100, wallet=wallet)
    ledger.complete(failed, "failed")
    for op in (pending, failed):
        refused_by(
            scratch,
            "operation_final",
            "UPDATE operation SET reversed_amount = 10 WHERE id = %s",
            op,
        )
    # Growing it changes nothing else of a final operation.
    refused_by(
        scratch,
        "operation_final",
        "UPDATE operation SET reversed_amount = 130, amount = 600 WHERE id = %s",
        succeeded,
    )
    refused_by(
        scratch,
        "operation_final",
        "UPDATE operation SET reversed_amount = 130, status = 'failed', error_code = 'x' "
        "WHERE id = %s",
        succeeded,
    )


# --- outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hold", "void", "expiry"])
def test_holds_voids_and_expiries_succeed_without_a_transaction(
    scratch: Conn, ledger: MoneyOut, kind: str
) -> None:
    source = ledger.funded(500)

    def new() -> uuid.UUID:
        if kind == "hold":
            return ledger.record(kind, 100, source=source)
        return ledger.record(kind, 100, source=source, hold=ledger.hold(source))

    ledger.complete(new())
    op = new()
    # A ledger transaction for it can only be written with the triggers off (the one
    # that checks a transaction's operation refuses it); the outcome check still holds.
    with scratch, scratch.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute(
            "INSERT INTO transaction (id, operation_id, type) VALUES (%s, %s, 'capture')",
            (uuid7(), op),
        )
    refused_by(
        scratch,
        "operation_outcome",
        "UPDATE operation SET status = 'succeeded', completed_at = now() WHERE id = %s",
        op,
    )


@pytest.mark.parametrize("kind", ["withdrawal", "capture", "reversal"])
def test_money_moving_kinds_succeed_only_with_their_transaction(
    scratch: Conn, ledger: MoneyOut, kind: str
) -> None:
    source = ledger.funded(500)
    destination = ledger.wallet()

    def new() -> tuple[uuid.UUID, list[tuple[uuid.UUID, int]]]:
        if kind == "withdrawal":
            return ledger.record(kind, 100, wallet=source), [(source, -100), (FUNDING, 100)]
        if kind == "capture":
            hold = ledger.hold(source, 100, destination)
            op = ledger.record(kind, 100, source=source, destination=destination, hold=hold)
            return op, [(source, -100), (destination, 100)]
        original = ledger.record("replenishment", 100, wallet=source)
        ledger.post(original, "replenishment", [(FUNDING, -100), (source, 100)])
        return ledger.record(kind, 100, source=source, reverses=original), [
            (source, -100),
            (FUNDING, 100),
        ]

    op, legs = new()
    refused_by(
        scratch,
        "operation_outcome",
        "UPDATE operation SET status = 'succeeded', completed_at = now() WHERE id = %s",
        op,
    )
    ledger.post(op, kind, legs)


# --- shapes ---------------------------------------------------------------------------


def test_each_new_kind_has_its_shape(scratch: Conn, ledger: MoneyOut) -> None:
    a, b = ledger.funded(1_000), ledger.wallet()
    hold = ledger.hold(a, 100, b)
    original = ledger.record("transfer", 100, source=a, destination=b)
    batch = uuid7()
    ledger.sql(
        "INSERT INTO replenishment_batch (id, tenant_id, total) VALUES (%s, %s, 1)",
        batch,
        ledger.tenant,
    )
    good: list[tuple[str, dict[str, Any]]] = [
        ("withdrawal", {"wallet": a}),
        ("hold", {"source": a}),
        ("hold", {"source": a, "destination": b}),
        ("capture", {"source": a, "hold": hold}),
        ("capture", {"source": a, "destination": b, "hold": hold}),
        ("void", {"source": a, "destination": b, "hold": hold}),
        ("expiry", {"source": a, "hold": hold}),
        ("reversal", {"source": b, "destination": a, "reverses": original}),
        ("reversal", {"source": a, "reverses": original}),  # to the funding side
        ("reversal", {"destination": a, "reverses": original}),  # from the funding side
    ]
    bad: list[tuple[str, dict[str, Any]]] = [
        ("withdrawal", {"source": a}),
        ("withdrawal", {"wallet": a, "source": a}),
        ("withdrawal", {"wallet": a, "destination": b}),
        ("withdrawal", {"wallet": a, "hold": hold}),
        ("withdrawal", {"wallet": a, "reverses": original}),
        ("withdrawal", {"wallet": a, "expires": True}),
        ("withdrawal", {"wallet": a, "batch": batch}),
        ("hold", {"source": a, "expires": False}),
        ("hold", {"wallet": a}),
        ("hold", {"destination": b}),
        ("hold", {"source": a, "destination": a}),
        ("hold", {"source": a, "hold": hold}),
        ("hold", {"source": a, "reversed_amount": 1}),
        ("capture", {"source": a}),
        ("capture", {"wallet": a, "hold": hold}),
        ("capture", {"destination": b, "hold": hold}),
        ("capture", {"source": a, "destination": a, "hold": hold}),
        ("capture", {"source": a, "hold": hold, "expires": True}),
        ("capture", {"source": a, "hold": hold, "reverses": original}),
        ("void", {"source": a}),
        ("void", {"source": a, "hold": hold, "reversed_amount": 1}),
        ("expiry", {"source": a}),
        ("expiry", {"source": a, "hold": hold, "expires": True}),
        ("reversal", {"source": b, "destination": a}),
        ("reversal", {"reverses": original, "wallet": a}),
        ("reversal", {"wallet": b, "destination": a, "reverses": original}),
        ("reversal", {"reverses": original}),  # neither side named
        ("reversal", {"source": a, "destination": a, "reverses": original}),
        ("reversal", {"source": b, "destination": a, "reverses": original, "hold": hold}),
        ("reversal", {"source": b, "reverses": original, "reversed_amount": 1}),
        ("transfer", {"source": a, "destination": b, "hold": hold}),
        ("transfer", {"source": a, "destination": b, "reverses": original}),
        ("replenishment", {"wallet": a, "expires": True}),
    ]
    for kind, columns in bad:
        refused_insert(
            scratch,
            "ck_operation_shape",
            ledger.insert(kind, **columns),
        )
    for kind, columns in good:
        ledger.record(kind, **columns)


def test_one_expiry_per_hold(scratch: Conn, ledger: MoneyOut) -> None:
    source = ledger.funded(1_000)
    hold, other = ledger.hold(source), ledger.hold(source)
    ledger.record("expiry", source=source, hold=hold)
    refused_insert(
        scratch, "uq_operation_expiry_hold_id", ledger.insert("expiry", source=source, hold=hold)
    )
    # Captures and voids of a hold are not limited by the schema (the drain fails all
    # but the first), and another hold has its own expiry.
    ledger.record("capture", source=source, hold=hold)
    ledger.record("capture", source=source, hold=hold)
    ledger.record("void", source=source, hold=hold)
    ledger.record("expiry", source=source, hold=other)
