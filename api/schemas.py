"""Request and response models. Requests are validated with these; responses are built
directly (see `api.serialize`) and the models here describe them in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.money import (
    AMOUNT_PATTERN,
    MAX_AMOUNT_CENTS,
    MAX_AMOUNT_TEXT,
    AmountError,
    normalize_currency,
    parse_amount,
)


def _amount(value: object) -> int:
    try:
        return parse_amount(value)
    except AmountError as exc:
        raise PydanticCustomError("amount", str(exc)) from None


def _storable(value: str) -> None:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold a lone surrogate."""
    if "\x00" in value:
        raise PydanticCustomError("text", "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("text", "must be valid Unicode text") from None


def _currency(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("currency", 'currency must be a string such as "USD"')
    _storable(value)
    return normalize_currency(value)


def _text(max_length: int, *, allow_blank: bool) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "must be a string")
        _storable(value)
        if not allow_blank and not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        if len(value) > max_length:
            raise PydanticCustomError("too_long", f"must be at most {max_length} characters")
        return value

    return check


Amount = Annotated[
    int,
    BeforeValidator(_amount),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["25.00"]},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": MAX_AMOUNT_CENTS // 100,
                    "multipleOf": 0.01,
                },
            ],
            "description": "A decimal amount greater than zero and at most "
            f"{MAX_AMOUNT_TEXT}, with at most 2 fraction digits. Strings are preferred.",
        }
    ),
]
Currency = Annotated[
    str,
    BeforeValidator(_currency),
    WithJsonSchema(
        {
            "type": "string",
            "enum": ["USD"],
            "default": "USD",
            "description": "USD, the only currency (its ASCII letters in any case are accepted)",
        }
    ),
]
# Text PostgreSQL can store: no NUL. (`_storable` also refuses lone surrogates, which no
# valid Unicode string, and so nothing a schema describes, contains.)
_TEXT = r"[^\u0000]"
Name = Annotated[
    str,
    BeforeValidator(_text(200, allow_blank=False)),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": rf"^{_TEXT}*[^\s\u0000]{_TEXT}*$",
        }
    ),
]
Reference = Annotated[
    str,
    BeforeValidator(_text(255, allow_blank=True)),
    WithJsonSchema({"type": "string", "maxLength": 255, "pattern": rf"^{_TEXT}*$"}),
]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(RequestModel):
    model_config = ConfigDict(
        {
            "extra": "forbid",
            "json_schema_extra": {"examples": [{"name": "Alice", "currency": "USD"}]},
        }
    )
    name: Name
    currency: Currency = "USD"


class ReplenishmentCreate(RequestModel):
    model_config = ConfigDict(
        {
            "extra": "forbid",
            "json_schema_extra": {
                "examples": [{"amount": "25.00", "currency": "USD", "reference": "top-up 42"}]
            },
        }
    )
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class TransferCreate(RequestModel):
    model_config = ConfigDict(
        {
            "extra": "forbid",
            "json_schema_extra": {
                "examples": [
                    {
                        "from_wallet_id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                        "to_wallet_id": "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12",
                        "amount": "5.00",
                        "reference": "rent",
                    }
                ]
            },
        }
    )
    from_wallet_id: UUID
    to_wallet_id: UUID
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


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


# --- Responses (documentation) --------------------------------------------------------

Money = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", examples=["25.00"])]


class Wallet(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                    "account_id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                    "currency": "USD",
                    "balance": "20.00",
                    "updated_at": "2026-11-25T10:15:30.123456Z",
                }
            ]
        }
    )
    id: UUID
    account_id: UUID
    currency: Literal["USD"]
    balance: Money
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
    type: Literal["replenishment", "transfer"]
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
                    "error": None,
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "completed_at": "2026-11-25T10:15:30.151002Z",
                }
            ]
        }
    )
    id: UUID
    type: Literal["replenishment", "transfer"]
    status: Literal["pending", "succeeded", "failed"]
    amount: Money
    currency: Literal["USD"]
    wallet_id: UUID | None
    from_wallet_id: UUID | None
    to_wallet_id: UUID | None
    reference: str | None
    batch_id: UUID | None
    transaction_id: UUID | None
    error: OperationError | None
    created_at: datetime
    completed_at: datetime | None


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
