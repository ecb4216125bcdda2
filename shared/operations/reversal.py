"""Reversal: money given back. `POST /v1/operations/{operation_id}/reversals`.

Only a succeeded transfer, replenishment, withdrawal or capture can be reversed (else
`422 not_reversible` at intake), in parts or whole (by default, what is left). A
transfer's or capture's reversal debits its destination (the funding side for a capture
without one) and credits its source; a replenishment's debits the wallet and credits the
funding side; a withdrawal's debits the funding side and credits the wallet. It joins the
queue of the wallet it debits, or, when that is the funding side, of the wallet it
credits. Applied, it fails with `reversal_exceeds_amount` if the original's succeeded
reversals would add up to more than its amount, and with `insufficient_funds` if the
debited wallet's available balance cannot cover it; else it posts, and the original's
`reversed_amount` grows by its amount.
"""

from __future__ import annotations

from uuid import UUID

from shared.asyncdb import Record
from shared.errors import NotReversible
from shared.fields import OptionalAmount, Reference, RequestModel, examples
from shared.money import format_cents
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    FUNDING,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    REVERSAL_EXCEEDS_AMOUNT,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)

REVERSIBLE = ("transfer", "replenishment", "withdrawal", "capture")


class ReversalCreate(RequestModel):
    model_config = examples({"amount": "5.00", "reference": "refund, item 2"}, {})
    amount: OptionalAmount = None
    reference: Reference | None = None


def _legs(original: Record) -> tuple[UUID | None, UUID | None]:
    """The wallets the reversal debits and credits (None: the funding side)."""
    if original["type"] == "replenishment":
        return original["wallet_id"], None
    if original["type"] == "withdrawal":
        return None, original["wallet_id"]
    return original["to_wallet_id"], original["from_wallet_id"]


class Reversal(Kind):
    name = "reversal"
    request = ReversalCreate
    failures = (
        REVERSAL_EXCEEDS_AMOUNT,
        INSUFFICIENT_FUNDS,
        BALANCE_LIMIT_EXCEEDED,
        INTERNAL_ERROR,
    )
    uses_funding = True
    audit_debit = (
        "(o.from_wallet_id IS NULL AND w.kind = 'funding') OR p.wallet_id = o.from_wallet_id"
    )
    audit_credit = "(o.to_wallet_id IS NULL AND w.kind = 'funding') OR p.wallet_id = o.to_wallet_id"

    @staticmethod
    def asked(operation_id: UUID, body: ReversalCreate) -> dict[str, object]:
        return {
            "reverses_operation_id": str(operation_id),
            "amount": body.amount,
            "reference": body.reference,
        }

    @staticmethod
    def new(body: ReversalCreate, original: Record) -> NewOperation:
        """`original` is the operation to reverse (the tenant's), as the API reads it."""
        if original["type"] not in REVERSIBLE or original["status"] != "succeeded":
            raise NotReversible(
                f"Only a succeeded transfer, replenishment, withdrawal or capture can be "
                f"reversed; this is a {original['status']} {original['type']}"
            )
        left = original["amount"] - original["reversed_amount"]
        if body.amount is None and left == 0:
            raise NotReversible(
                f"The operation is reversed in full ({format_cents(original['amount'])})"
            )
        debited, credited = _legs(original)
        queue = debited if debited is not None else credited
        assert queue is not None
        return NewOperation(
            kind=Reversal.name,
            amount=left if body.amount is None else body.amount,
            currency=original["currency"],
            reference=body.reference,
            queue_wallet_id=queue,
            from_wallet_id=debited,
            to_wallet_id=credited,
            reverses_operation_id=original["id"],
            asked=Reversal.asked(original["id"], body),
        )

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.reverses_operation_id is not None
        original = ledger.reversed(operation.reverses_operation_id)
        if original.reversed_amount + operation.amount > original.amount:
            ledger.fail(
                operation,
                REVERSAL_EXCEEDS_AMOUNT,
                f"Its reversals would add up to "
                f"{format_cents(original.reversed_amount + operation.amount)}, more than its "
                f"{format_cents(original.amount)} "
                f"({format_cents(original.amount - original.reversed_amount)} is left)",
            )
            return
        debited = operation.from_wallet_id or FUNDING
        credited = operation.to_wallet_id or FUNDING
        amount = operation.amount
        if ledger.post(operation, [(debited, -amount), (credited, amount)]):
            original.reversed_amount += amount


REVERSAL = Reversal()
