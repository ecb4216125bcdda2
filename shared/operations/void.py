"""Void: a hold is released, nothing moves. `POST /v1/holds/{hold_id}/void`.

It joins the queue of the hold's source wallet. Applied, it releases the hold (`voided`),
or fails with `hold_expired` when accepted at or after the hold's expiry, else with
`hold_not_active` when the hold is not held. It writes no ledger transaction.
"""

from __future__ import annotations

from uuid import UUID

from shared.asyncdb import Record
from shared.fields import Reference, RequestModel, examples
from shared.operations.hold import active_hold
from shared.operations.kind import (
    HOLD_EXPIRED,
    HOLD_NOT_ACTIVE,
    INTERNAL_ERROR,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)


class VoidCreate(RequestModel):
    model_config = examples({})
    reference: Reference | None = None


class Void(Kind):
    name = "void"
    request = VoidCreate
    failures = (HOLD_EXPIRED, HOLD_NOT_ACTIVE, INTERNAL_ERROR)
    posts = False

    @staticmethod
    def asked(hold_id: UUID, body: VoidCreate) -> dict[str, object]:
        return {"hold_id": str(hold_id), "reference": body.reference}

    @staticmethod
    def new(body: VoidCreate, hold: Record) -> NewOperation:
        """`hold` is the hold operation (the tenant's); a void's amount is the hold's."""
        return NewOperation(
            kind=Void.name,
            amount=hold["amount"],
            currency=hold["currency"],
            reference=body.reference,
            queue_wallet_id=hold["from_wallet_id"],
            from_wallet_id=hold["from_wallet_id"],
            to_wallet_id=hold["to_wallet_id"],
            hold_id=hold["id"],
            asked=Void.asked(hold["id"], body),
        )

    def wallets(self, operation: PendingOperation) -> list[UUID]:
        assert operation.from_wallet_id is not None
        return [operation.from_wallet_id]

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        hold = active_hold(operation, ledger)
        if hold is None:
            return
        ledger.release(hold.from_wallet_id, hold.amount)
        ledger.end_hold(hold, "voided")
        ledger.succeed(operation)


VOID = Void()
