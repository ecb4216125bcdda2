"""Withdrawal: money leaves paysys (a payout). `POST /v1/wallets/{wallet_id}/withdrawals`.

It joins the queue of the wallet it debits. Applied, it debits the wallet and credits the
funding side, or fails with `insufficient_funds` when the wallet's available balance
(its balance less its active holds) does not cover it.
"""

from __future__ import annotations

import uuid

from shared.fields import Amount, Currency, Reference, RequestModel, examples
from shared.operations.kind import (
    FUNDING,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)


class WithdrawalCreate(RequestModel):
    model_config = examples({"amount": "40.00", "currency": "USD", "reference": "payout 7"})
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class Withdrawal(Kind):
    name = "withdrawal"
    request = WithdrawalCreate
    failures = (INSUFFICIENT_FUNDS, INTERNAL_ERROR)
    uses_funding = True
    audit_debit = "p.wallet_id = o.wallet_id"
    audit_credit = "w.kind = 'funding'"

    @staticmethod
    def new(body: WithdrawalCreate, wallet_id: uuid.UUID) -> NewOperation:
        return NewOperation(
            kind=Withdrawal.name,
            amount=body.amount,
            currency=body.currency,
            reference=body.reference,
            queue_wallet_id=wallet_id,
            wallet_id=wallet_id,
        )

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.wallet_id is not None
        amount = operation.amount
        ledger.post(operation, [(operation.wallet_id, -amount), (FUNDING, amount)])


WITHDRAWAL = Withdrawal()
