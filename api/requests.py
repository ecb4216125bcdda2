"""Request bodies of the routes that are not operations of one kind (those are their
kinds' own, in `shared.operations`): accounts and replenishment batches."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field

from shared.fields import Amount, Currency, Name, Reference, RequestModel


class AccountCreate(RequestModel):
    model_config = ConfigDict(
        {
            "extra": "forbid",
            "json_schema_extra": {"examples": [{"name": "Alice", "currency": "USD"}]},
        }
    )
    name: Name
    currency: Currency = "USD"


MAX_BATCH_ITEMS = 10_000


class BatchItemCreate(RequestModel):
    wallet_id: UUID
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class BatchCreate(RequestModel):
    model_config = ConfigDict(
        {
            "extra": "forbid",
            "json_schema_extra": {
                "examples": [
                    {
                        "items": [
                            {
                                "wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                                "amount": "10.00",
                                "reference": "payroll 1",
                            },
                            {
                                "wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
                                "amount": "12.50",
                            },
                        ]
                    }
                ]
            },
        }
    )
    # Items are validated one by one by the route (see `api.routes.batches`), not here: a
    # refused batch must name every bad item, malformed ones and ones naming unknown
    # wallets alike, and a failed model validation would leave the route no chance to
    # look up the wallets of the others. The schema still describes them fully.
    items: Annotated[
        list[Any],
        Field(min_length=1, max_length=MAX_BATCH_ITEMS),
        BeforeValidator(
            lambda value: value,
            json_schema_input_type=Annotated[
                list[BatchItemCreate], Field(min_length=1, max_length=MAX_BATCH_ITEMS)
            ],
        ),
    ]
