"""Request and response models. Requests are validated with these; responses are built
directly (see `api.serialize`) and the models here describe them in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.money import AMOUNT_PATTERN, MAX_AMOUNT_TEXT, AmountError, parse_amount


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
    return value.upper()


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
                    "maximum": int(float(MAX_AMOUNT_TEXT)),
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
    WithJsonSchema({"type": "string", "enum": ["USD"], "default": "USD"}),
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
    name: Name
    currency: Currency = "USD"


class ReplenishmentCreate(RequestModel):
    amount: Amount
    currency: Currency = "USD"
    reference: Reference | None = None


class TransferCreate(RequestModel):
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
    items: list[BatchItemCreate] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


# --- Responses (documentation) --------------------------------------------------------

Money = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", examples=["25.00"])]


class Wallet(BaseModel):
    id: UUID
    account_id: UUID
    currency: Literal["USD"]
    balance: Money
    updated_at: datetime


class Account(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    wallet: Wallet


class AccountPage(BaseModel):
    items: list[Account]
    next_cursor: str | None


class Posting(BaseModel):
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
    id: UUID
    status: Literal["pending", "completed"]
    total: int
    pending: int
    succeeded: int
    failed: int
    created_at: datetime
    completed_at: datetime | None


class BatchValidation(BaseModel):
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
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldErrorModel] | None = None
