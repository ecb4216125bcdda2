"""Field types of request bodies, shared by every kind of operation and the API: amounts
parsed from their literal text (never through float), currencies, names and references
PostgreSQL can store. Requests that do not match are a 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
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


def _amount_schema(description: str) -> WithJsonSchema:
    return WithJsonSchema(
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
            "description": f"A decimal amount greater than zero and at most {MAX_AMOUNT_TEXT}, "
            f"with at most 2 fraction digits. {description}",
        }
    )


Amount = Annotated[int, BeforeValidator(_amount), _amount_schema("Strings are preferred.")]
# An amount that may be left out (for its default), but not given as null: a client that
# sends null most likely meant a number it did not have.
OptionalAmount = Annotated[
    int | None, BeforeValidator(_amount), _amount_schema("Leave it out for the default.")
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


def examples(*documents: dict[str, Any]) -> ConfigDict:
    """A request model's configuration: unknown fields refused, and its examples."""
    return ConfigDict({"extra": "forbid", "json_schema_extra": {"examples": list(documents)}})
