"""What a kind of operation is: the one class every kind of operation implements.

A kind says, in its own module (`shared/operations/<kind>.py`):

* the request it accepts (`request`, a pydantic model: the POST body) and how a request
  becomes a new operation (`new`): which wallets it names, and which wallet's queue it
  joins (the wallet it debits, as API.md orders them);
* what it refuses at intake without asking the database (`refuse`);
* what applying it does against the drain's locked balances (`apply`): the postings it
  writes through the `Ledger`, or the failure it records, with its failure codes
  (`failures`);
* how the audit recognises its postings (`audit_debit`, `audit_credit`).

Intake (`shared.intake.operations`), the drain (`shared.ledger`), the audit and the API's
serialization are generic over kinds: adding a kind is a module here, its entry in
`shared.operations.KINDS`, and its route.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from pydantic import BaseModel

from shared.errors import PaysysError, SameWallet

# The funding side of the ledger, in a posting's legs: whichever funding wallet the drain
# locked. Never a user wallet, never named by the API.
FUNDING = uuid.UUID(int=0)

INSUFFICIENT_FUNDS = "insufficient_funds"
BALANCE_LIMIT_EXCEEDED = "balance_limit_exceeded"
HOLD_NOT_ACTIVE = "hold_not_active"
HOLD_EXPIRED = "hold_expired"
REVERSAL_EXCEEDS_AMOUNT = "reversal_exceeds_amount"
INTERNAL_ERROR = "internal_error"


@dataclass(slots=True, frozen=True)
class NewOperation:
    """A request, as the operation it becomes: what intake records and hashes."""

    kind: str
    amount: int
    currency: str
    reference: str | None
    queue_wallet_id: uuid.UUID
    wallet_id: uuid.UUID | None = None
    from_wallet_id: uuid.UUID | None = None
    to_wallet_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None
    reverses_operation_id: uuid.UUID | None = None
    expires_in: int | None = None  # seconds, for holds: expires_at is set at recording
    # What the client asked, where the operation's fields are derived from other rows
    # (a capture's from its hold, a reversal's from its original): its meaning is the
    # request, which does not change when those rows do.
    asked: dict[str, object] | None = None

    @property
    def named_wallets(self) -> list[uuid.UUID]:
        """The user wallets the request names, each of which must be the tenant's."""
        named = (self.wallet_id, self.from_wallet_id, self.to_wallet_id)
        return list(dict.fromkeys(w for w in named if w is not None))

    def meaning(self) -> dict[str, object]:
        """What the request means, for its idempotency hash: its kind and its fields,
        never the route it came by."""
        if self.asked is not None:
            return asked_meaning(self.kind, self.asked)
        return {
            "kind": self.kind,
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "wallet_id": None if self.wallet_id is None else str(self.wallet_id),
            "from_wallet_id": None if self.from_wallet_id is None else str(self.from_wallet_id),
            "to_wallet_id": None if self.to_wallet_id is None else str(self.to_wallet_id),
            "hold_id": None if self.hold_id is None else str(self.hold_id),
            "reverses_operation_id": (
                None if self.reverses_operation_id is None else str(self.reverses_operation_id)
            ),
            "expires_in": self.expires_in,
        }


def asked_meaning(kind: str, asked: dict[str, object]) -> dict[str, object]:
    """The meaning of a request whose operation is derived from another row: its kind and
    what was asked (see `NewOperation.asked`). The route hashes it before deriving."""
    return {"kind": kind, **asked}


@dataclass(slots=True)
class PendingOperation:
    """An operation as a drain reads it, to apply it."""

    id: uuid.UUID
    type: str
    amount: int
    wallet_id: uuid.UUID | None
    from_wallet_id: uuid.UUID | None
    to_wallet_id: uuid.UUID | None
    batch_id: uuid.UUID | None
    queue_wallet_id: uuid.UUID
    seq: int
    created_at: datetime
    tenant_id: uuid.UUID
    request_id: str | None
    hold_id: uuid.UUID | None = None
    reverses_operation_id: uuid.UUID | None = None
    expires_at: datetime | None = None
    # For its event (`shared/events/outbox.py`): the operation as the API shows it.
    currency: str = "USD"
    reference: str | None = None


@dataclass(slots=True)
class HoldState:
    """A hold as a drain sees it: its hold operation's outcome and, once that succeeded,
    the hold itself (locked)."""

    id: uuid.UUID
    operation_status: str
    from_wallet_id: uuid.UUID
    to_wallet_id: uuid.UUID | None
    amount: int
    expires_at: datetime
    status: str | None  # None until the hold operation succeeded
    captured_amount: int | None = None


@dataclass(slots=True)
class ReversedState:
    """An operation being reversed, as a drain sees it (locked)."""

    id: uuid.UUID
    amount: int
    reversed_amount: int


class Ledger(Protocol):
    """What a kind may do when applied: the drain's book of locked balances."""

    def balance(self, wallet_id: uuid.UUID) -> int: ...

    def post(
        self,
        operation: PendingOperation,
        legs: list[tuple[uuid.UUID, int]],
        release: tuple[uuid.UUID, int] | None = None,
    ) -> bool:
        """Write the operation's ledger transaction: `legs` are (wallet or FUNDING,
        signed amount), summing to zero; `release` is a hold given back in the same step.
        The book refuses, as the operation's failure, a debit that a user wallet's
        available balance cannot cover (`insufficient_funds`) and a credit that takes one
        over the balance limit (`balance_limit_exceeded`). True if it was written."""

    def fail(self, operation: PendingOperation, code: str, message: str) -> None: ...

    def succeed(self, operation: PendingOperation) -> None:
        """The operation succeeded without moving money (a hold, a void, an expiry)."""

    def available(self, wallet_id: uuid.UUID) -> int:
        """The wallet's balance less what its active holds reserve."""

    def reserve(self, wallet_id: uuid.UUID, amount: int) -> None:
        """Hold `amount` of the wallet's available balance (the caller checked it)."""

    def release(self, wallet_id: uuid.UUID, amount: int) -> None:
        """Give back `amount` held on the wallet."""

    def hold(self, hold_id: uuid.UUID) -> HoldState:
        """The hold a capture, void or expiry names (loaded and locked by the drain)."""

    def create_hold(self, operation: PendingOperation) -> None:
        """The hold operation succeeded: its hold exists, held."""

    def end_hold(self, hold: HoldState, status: str, captured_amount: int | None = None) -> None:
        """The hold is captured, voided or expired (its held amount released by the caller)."""

    def reversed(self, operation_id: uuid.UUID) -> ReversedState:
        """The operation a reversal names (loaded and locked by the drain)."""


class Kind:
    """A kind of operation. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    request: ClassVar[type[BaseModel]]
    # Failure codes its operations may end with (`internal_error` applies to every kind).
    failures: ClassVar[tuple[str, ...]]
    # Whether applying it touches the funding side (the drain then locks a funding wallet).
    uses_funding: ClassVar[bool] = False
    # Whether it succeeds with a ledger transaction (holds, voids and expiries do not).
    posts: ClassVar[bool] = True
    # Not requested through the API (an expiry is enqueued by the sweeper).
    internal: ClassVar[bool] = False
    # SQL conditions on a posting `p` of wallet `w`, for an operation row `o`: the leg
    # its ledger transaction debits, and the one it credits. The audit's expectations.
    audit_debit: ClassVar[str] = "false"
    audit_credit: ClassVar[str] = "false"

    def refuse(self, new: NewOperation) -> PaysysError | None:
        """A refusal that needs no database (answered after the wallets were found). For
        every kind: money never moves from a wallet to itself (the schema refuses it too)."""
        if new.from_wallet_id is not None and new.from_wallet_id == new.to_wallet_id:
            return SameWallet("from_wallet_id and to_wallet_id must be different wallets")
        return None

    def wallets(self, operation: PendingOperation) -> list[uuid.UUID]:
        """The user wallets applying the operation reads or changes (locked by the drain)."""
        named = (operation.wallet_id, operation.from_wallet_id, operation.to_wallet_id)
        return [w for w in named if w is not None]

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        raise NotImplementedError
