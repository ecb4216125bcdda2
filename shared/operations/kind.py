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

from shared.errors import PaysysError

# The funding side of the ledger, in a posting's legs: whichever funding wallet the drain
# locked. Never a user wallet, never named by the API.
FUNDING = uuid.UUID(int=0)

INSUFFICIENT_FUNDS = "insufficient_funds"
BALANCE_LIMIT_EXCEEDED = "balance_limit_exceeded"
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

    @property
    def named_wallets(self) -> list[uuid.UUID]:
        """The user wallets the request names, each of which must be the tenant's."""
        named = (self.wallet_id, self.from_wallet_id, self.to_wallet_id)
        return list(dict.fromkeys(w for w in named if w is not None))

    def meaning(self) -> dict[str, object]:
        """What the request means, for its idempotency hash: its kind and its fields,
        never the route it came by."""
        return {
            "kind": self.kind,
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "wallet_id": None if self.wallet_id is None else str(self.wallet_id),
            "from_wallet_id": None if self.from_wallet_id is None else str(self.from_wallet_id),
            "to_wallet_id": None if self.to_wallet_id is None else str(self.to_wallet_id),
        }


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


class Ledger(Protocol):
    """What a kind may do when applied: the drain's book of locked balances."""

    def balance(self, wallet_id: uuid.UUID) -> int: ...

    def post(self, operation: PendingOperation, legs: list[tuple[uuid.UUID, int]]) -> None:
        """Write the operation's ledger transaction: `legs` are (wallet or FUNDING,
        signed amount), summing to zero. The book refuses, as the operation's failure,
        a debit that a user wallet cannot cover (`insufficient_funds`) and a credit that
        takes one over the balance limit (`balance_limit_exceeded`)."""

    def fail(self, operation: PendingOperation, code: str, message: str) -> None: ...


class Kind:
    """A kind of operation. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    request: ClassVar[type[BaseModel]]
    # Failure codes its operations may end with (`internal_error` applies to every kind).
    failures: ClassVar[tuple[str, ...]]
    # Whether applying it touches the funding side (the drain then locks a funding wallet).
    uses_funding: ClassVar[bool] = False
    # SQL expressions, over an operation row `o`, of the wallets its ledger transaction
    # debits and credits ('funding' for the funding side): the audit's expectations.
    audit_debit: ClassVar[str]
    audit_credit: ClassVar[str]

    def refuse(self, new: NewOperation) -> PaysysError | None:
        """A refusal that needs no database (answered after the wallets were found)."""
        return None

    def wallets(self, operation: PendingOperation) -> list[uuid.UUID]:
        """The user wallets applying the operation reads or changes (locked by the drain)."""
        named = (operation.wallet_id, operation.from_wallet_id, operation.to_wallet_id)
        return [w for w in named if w is not None]

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        raise NotImplementedError
