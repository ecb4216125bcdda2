"""Transfer: money moves between two wallets of a tenant. `POST /v1/transfers`.

It joins the queue of the wallet it debits (`from_wallet_id`); a transfer to the same
wallet is refused at intake (`same_wallet`). Applied, it debits the source and credits
the destination, or fails with `insufficient_funds` (the source cannot cover it) or
`balance_limit_exceeded` (the destination would go over the limit).
"""

from __future__ import annotations

from uuid import UUID

from shared.fields import Amount, Currency, Reference, RequestModel, examples
from shared.operations.kind import (
    BALANCE_LIMIT_EXCEEDED,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)


class TransferCreate(RequestModel):
    model_config = examples(
        {
            "from_wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
            "to_wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
            "amount": "5.00",
            "reference": "rent",
        }
    )
    from_wallet_id: UUID
    to_wallet_id: UUID
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class Transfer(Kind):
    name = "transfer"
    request = TransferCreate
    failures = (INSUFFICIENT_FUNDS, BALANCE_LIMIT_EXCEEDED, INTERNAL_ERROR)
    audit_debit = "p.wallet_id = o.from_wallet_id"
    audit_credit = "p.wallet_id = o.to_wallet_id"

    @staticmethod
    def new(body: TransferCreate) -> NewOperation:
        return NewOperation(
            kind=Transfer.name,
            amount=body.amount,
            currency=body.currency,
            reference=body.reference,
            queue_wallet_id=body.from_wallet_id,
            from_wallet_id=body.from_wallet_id,
            to_wallet_id=body.to_wallet_id,
        )

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.from_wallet_id is not None and operation.to_wallet_id is not None
        ledger.post(
            operation,
            [
                (operation.from_wallet_id, -operation.amount),
                (operation.to_wallet_id, operation.amount),
            ],
        )


TRANSFER = Transfer()
