"""Request and response models. Requests are validated with these (the requests of each
kind of operation are its own module's, see `shared.operations`); responses are these
models, built by `shared.resources.serialize`: the shapes `/openapi.json` documents are the shapes
served. `tests/test_client_schema.py` holds the Python client to them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.operations import KINDS

Money = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", examples=["25.00"])]
# One of the kinds of `shared.operations` the API offers; a posting's, one that posts.
OperationType = Annotated[
    str,
    WithJsonSchema({"type": "string", "enum": [k.name for k in KINDS.values() if not k.internal]}),
]
PostingType = Annotated[
    str,
    WithJsonSchema({"type": "string", "enum": [k.name for k in KINDS.values() if k.posts]}),
]


class Wallet(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                    "account_id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                    "currency": "USD",
                    "balance": "20.00",
                    "held": "5.00",
                    "available": "15.00",
                    "updated_at": "2026-11-25T10:15:30.123456Z",
                }
            ]
        }
    )
    id: UUID
    account_id: UUID
    currency: Literal["USD"]
    balance: Money
    held: Money = Field(description="The sum of the wallet's active holds")
    available: Money = Field(description="balance - held: what it can spend or hold")
    updated_at: datetime


class Account(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                    "name": "Alice",
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "wallet": {
                        "id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                        "account_id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                        "currency": "USD",
                        "balance": "20.00",
                        "held": "0.00",
                        "available": "20.00",
                        "updated_at": "2026-11-25T10:15:30.123456Z",
                    },
                }
            ]
        }
    )
    id: UUID
    name: str
    created_at: datetime
    wallet: Wallet


class AccountPage(BaseModel):
    items: list[Account]
    next_cursor: str | None


class Posting(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c5-1f02-7d00-9a1b-c2d3e4f5a6b7",
                    "transaction_id": "0193a0c5-1f02-7c3d-8e4f-a5b6c7d8e9f0",
                    "operation_id": "0193a0c5-1f00-7a2b-b3c4-d5e6f7a8b9c0",
                    "type": "transfer",
                    "amount": "-5.00",
                    "balance_after": "20.00",
                    "created_at": "2026-11-25T10:15:30.123456Z",
                }
            ]
        }
    )
    id: UUID
    transaction_id: UUID
    operation_id: UUID
    type: PostingType
    amount: Money
    balance_after: Money
    created_at: datetime


class PostingPage(BaseModel):
    items: list[Posting]
    next_cursor: str | None


class OperationError(BaseModel):
    code: str
    message: str


class Operation(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c5-1f00-7a2b-b3c4-d5e6f7a8b9c0",
                    "type": "transfer",
                    "status": "succeeded",
                    "amount": "5.00",
                    "currency": "USD",
                    "wallet_id": None,
                    "from_wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                    "to_wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
                    "reference": "rent",
                    "batch_id": None,
                    "transaction_id": "0193a0c5-1f02-7c3d-8e4f-a5b6c7d8e9f0",
                    "hold_id": None,
                    "reverses_operation_id": None,
                    "reversed_amount": "0.00",
                    "error": None,
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "completed_at": "2026-11-25T10:15:30.151002Z",
                }
            ]
        }
    )
    id: UUID
    type: OperationType
    status: Literal["pending", "succeeded", "failed"]
    amount: Money
    currency: Literal["USD"]
    wallet_id: UUID | None
    from_wallet_id: UUID | None
    to_wallet_id: UUID | None
    reference: str | None
    batch_id: UUID | None
    transaction_id: UUID | None
    hold_id: UUID | None
    reverses_operation_id: UUID | None
    reversed_amount: Money = Field(description="The sum of its succeeded reversals")
    error: OperationError | None
    created_at: datetime
    completed_at: datetime | None


class Hold(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c7-0b00-7c1d-8e2f-a3b4c5d6e7f8",
                    "status": "held",
                    "from_wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                    "to_wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
                    "amount": "30.00",
                    "captured_amount": None,
                    "currency": "USD",
                    "reference": "order 1234",
                    "expires_at": "2026-12-02T10:15:30.123456Z",
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "updated_at": "2026-11-25T10:15:30.151002Z",
                }
            ]
        }
    )
    id: UUID = Field(description="The hold operation's id")
    status: Literal["pending", "held", "captured", "voided", "expired", "failed"]
    from_wallet_id: UUID
    to_wallet_id: UUID | None
    amount: Money
    captured_amount: Money | None
    currency: Literal["USD"]
    reference: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class Batch(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c6-0a00-7b1c-9d2e-f3a4b5c6d7e8",
                    "status": "pending",
                    "total": 10000,
                    "pending": 2500,
                    "succeeded": 7500,
                    "failed": 0,
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "completed_at": None,
                }
            ]
        }
    )
    id: UUID
    status: Literal["pending", "completed"]
    total: int
    pending: int
    succeeded: int
    failed: int
    created_at: datetime
    completed_at: datetime | None


class BatchValidation(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"valid": True, "total": 2}]})
    valid: Literal[True]
    total: int


class OperationPage(BaseModel):
    items: list[Operation]
    next_cursor: str | None


class Health(BaseModel):
    status: str


class FieldErrorModel(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://paysys.dev/problems/validation_error",
                    "title": "Validation failed",
                    "status": 422,
                    "detail": "The request is not valid; see errors",
                    "code": "validation_error",
                    "errors": [
                        {"loc": ["body", "amount"], "msg": "amount has more than 2 fraction digits"}
                    ],
                }
            ]
        }
    )
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldErrorModel] | None = None
