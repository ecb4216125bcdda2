"""Hold: money reserved on a wallet, to be captured, voided or left to expire.
`POST /v1/holds`; the hold operation's id is the hold's id.

It joins the queue of the wallet it reserves money on (`from_wallet_id`). Applied, it
holds the amount (the wallet's `held` grows, its available balance shrinks; its balance
and postings do not change), or fails with `insufficient_funds` when the available
balance does not cover it. It writes no ledger transaction. The hold then lives in the
`hold` table until a capture, a void or its expiry ends it (`capture.py`, `void.py`,
`expiry.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.fields import Amount, Currency, Reference, RequestModel, examples
from shared.money import format_cents
from shared.operations.kind import (
    HOLD_EXPIRED,
    HOLD_NOT_ACTIVE,
    INSUFFICIENT_FUNDS,
    INTERNAL_ERROR,
    HoldState,
    Kind,
    Ledger,
    NewOperation,
    PendingOperation,
)

DEFAULT_EXPIRES_IN = 604_800  # a week
MAX_EXPIRES_IN = 2_592_000  # thirty days


def _whole_seconds(value: object) -> int:
    """A JSON integer; `60.0` is one too (JSON Schema says so), `1.5`, "60" and true are
    not."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be a whole number of seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise PydanticCustomError("int_type", "must be a whole number of seconds")


class HoldCreate(RequestModel):
    model_config = examples(
        {
            "from_wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
            "to_wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
            "amount": "30.00",
            "reference": "order 1234",
            "expires_in": 86400,
        }
    )
    from_wallet_id: UUID
    to_wallet_id: UUID | None = None
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None
    expires_in: Annotated[
        int,
        BeforeValidator(_whole_seconds),
        Field(ge=1, le=MAX_EXPIRES_IN),
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_EXPIRES_IN,
                "description": "Seconds until the hold expires",
            }
        ),
    ] = DEFAULT_EXPIRES_IN


class Hold(Kind):
    name = "hold"
    request = HoldCreate
    failures = (INSUFFICIENT_FUNDS, INTERNAL_ERROR)
    posts = False

    @staticmethod
    def new(body: HoldCreate) -> NewOperation:
        return NewOperation(
            kind=Hold.name,
            amount=body.amount,
            currency=body.currency,
            reference=body.reference,
            queue_wallet_id=body.from_wallet_id,
            from_wallet_id=body.from_wallet_id,
            to_wallet_id=body.to_wallet_id,
            expires_in=body.expires_in,
        )

    def wallets(self, operation: PendingOperation) -> list[UUID]:
        assert operation.from_wallet_id is not None
        return [operation.from_wallet_id]  # the destination is not touched until capture

    def apply(self, operation: PendingOperation, ledger: Ledger) -> None:
        assert operation.from_wallet_id is not None
        available = ledger.available(operation.from_wallet_id)
        if available < operation.amount:
            ledger.fail(
                operation,
                INSUFFICIENT_FUNDS,
                f"The wallet's available balance ({format_cents(available)}) "
                f"does not cover {format_cents(operation.amount)}",
            )
            return
        ledger.reserve(operation.from_wallet_id, operation.amount)
        ledger.create_hold(operation)
        ledger.succeed(operation)


HOLD = Hold()


def active_hold(operation: PendingOperation, ledger: Ledger) -> HoldState | None:
    """The hold a capture or void ends, if it still can; else the operation's failure:
    `hold_expired` when it was accepted at or after the hold's expiry (whatever the hold's
    status then), else `hold_not_active` when the hold is not held (captured, voided,
    expired, or its hold operation failed)."""
    assert operation.hold_id is not None
    hold = ledger.hold(operation.hold_id)
    if operation.created_at >= hold.expires_at:
        ledger.fail(operation, HOLD_EXPIRED, "The hold expired before this was accepted")
        return None
    if hold.status != "held":
        state = hold.status or ("failed" if hold.operation_status == "failed" else "pending")
        ledger.fail(operation, HOLD_NOT_ACTIVE, f"The hold is {state}, not held")
        return None
    return hold
