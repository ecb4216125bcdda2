"""Replenishment: money comes in. `POST /v1/wallets/{wallet_id}/replenishments`.

It joins the queue of the wallet it credits. Applied, it debits the funding side and
credits the wallet; it fails only if the credit would take the wallet over the balance
limit.
"""

from __future__ import annotations

import uuid

from shared.fields import Amount, Currency, Reference, RequestModel, examples
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    FUNDING,
    INTERNAL_ERROR,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)


class ReplenishmentCreate(RequestModel):
    model_config = examples({"amount": "25.00", "currency": "USD", "reference": "top-up 42"})
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class Replenishment(Kind):
    name = "replenishment"
    request = ReplenishmentCreate
    failures = (BALANCE_LIMIT_EXCEEDED, INTERNAL_ERROR)
    uses_funding = True
    audit_debit = "w.kind = 'funding'"
    audit_credit = "p.wallet_id = o.wallet_id"

    @staticmethod
    def new(body: ReplenishmentCreate, wallet_id: uuid.UUID) -> NewOperation:
        return NewOperation(
            kind=Replenishment.name,
            amount=body.amount,
            currency=body.currency,
            reference=body.reference,
            queue_wallet_id=wallet_id,
            wallet_id=wallet_id,
        )

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.wallet_id is not None
        ledger.post(
            operation, [(FUNDING, -operation.amount), (operation.wallet_id, operation.amount)]
        )


REPLENISHMENT = Replenishment()
