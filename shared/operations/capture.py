"""Capture: a hold's money moves. `POST /v1/holds/{hold_id}/capture`.

It joins the queue of the hold's source wallet, behind the hold itself. Applied, it moves
the amount (at most the hold's; all of it by default) from the source to the hold's
destination, or to the funding side when the hold has none, as one ledger transaction,
and releases the whole hold (`captured`). One capture per hold: it fails with
`hold_expired` when accepted at or after the hold's expiry, else with `hold_not_active`
when the hold is not held; and with `balance_limit_exceeded` if the destination would go
over the limit (the hold then stays held).
"""

from __future__ import annotations

from uuid import UUID

from shared.asyncdb import Record
from shared.errors import FieldError, ValidationFailed
from shared.fields import OptionalAmount, Reference, RequestModel, examples
from shared.money import format_cents
from shared.operations.hold import active_hold
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    FUNDING,
    HOLD_EXPIRED,
    HOLD_NOT_ACTIVE,
    INTERNAL_ERROR,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)


class CaptureCreate(RequestModel):
    model_config = examples({"amount": "25.00", "reference": "delivered"}, {})
    amount: OptionalAmount = None
    reference: Reference | None = None


class Capture(Kind):
    name = "capture"
    request = CaptureCreate
    failures = (HOLD_EXPIRED, HOLD_NOT_ACTIVE, BALANCE_LIMIT_EXCEEDED, INTERNAL_ERROR)
    uses_funding = True  # a hold without a destination is captured to the funding side
    audit_debit = "p.wallet_id = o.from_wallet_id"
    audit_credit = "(o.to_wallet_id IS NULL AND w.kind = 'funding') OR p.wallet_id = o.to_wallet_id"

    @staticmethod
    def asked(hold_id: UUID, body: CaptureCreate) -> dict[str, object]:
        return {"hold_id": str(hold_id), "amount": body.amount, "reference": body.reference}

    @staticmethod
    def new(body: CaptureCreate, hold: Record) -> NewOperation:
        """`hold` is the hold operation (the tenant's)."""
        amount = hold["amount"] if body.amount is None else body.amount
        if amount > hold["amount"]:
            raise ValidationFailed(
                [
                    FieldError(
                        ["body", "amount"],
                        f"must be at most the hold's amount, {format_cents(hold['amount'])}",
                    )
                ]
            )
        return NewOperation(
            kind=Capture.name,
            amount=amount,
            currency=hold["currency"],
            reference=body.reference,
            queue_wallet_id=hold["from_wallet_id"],
            from_wallet_id=hold["from_wallet_id"],
            to_wallet_id=hold["to_wallet_id"],
            hold_id=hold["id"],
            asked=Capture.asked(hold["id"], body),
        )

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        hold = active_hold(operation, ledger)
        if hold is None:
            return
        source, amount = hold.from_wallet_id, operation.amount
        destination = hold.to_wallet_id or FUNDING
        if ledger.post(
            operation, [(source, -amount), (destination, amount)], release=(source, hold.amount)
        ):
            ledger.end_hold(hold, "captured", amount)


CAPTURE = Capture()
