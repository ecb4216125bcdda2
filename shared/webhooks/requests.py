"""Request bodies of the webhook endpoints' routes.

An endpoint subscribes to a list of event types: at least one, each one of
`shared.events.EVENT_TYPES`, none twice, or `["*"]` alone for every type (those to come
too). The URL is checked here for its type and length only; where it may point is the
rule of `shared.webhooks.urls`, which the route applies (its refusals have codes of their
own, and it may need DNS).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.events import EVENT_TYPES
from shared.fields import RequestModel, examples
from shared.webhooks.urls import MAX_URL_LENGTH

ALL_TYPES = "*"
MAX_DESCRIPTION_LENGTH = 500


def _text(max_length: int) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "must be a string")
        if "\x00" in value:
            raise PydanticCustomError("text", "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError("text", "must be valid Unicode text") from None
        if len(value) > max_length:
            raise PydanticCustomError("too_long", f"must be at most {max_length} characters")
        return value

    return check


def _subscribable(value: object) -> str:
    if value != ALL_TYPES and value not in EVENT_TYPES:
        shown = repr(value)[:60]
        raise PydanticCustomError(
            "event_type",
            f'{shown} is not an event type: one of {", ".join(EVENT_TYPES)}, or "*" alone',
        )
    return str(value)


def _one_subscription(types: list[str]) -> list[str]:
    if len(set(types)) != len(types):
        raise PydanticCustomError("event_types", "lists an event type more than once")
    if ALL_TYPES in types and len(types) > 1:
        raise PydanticCustomError(
            "event_types", '"*" (every type) cannot be combined with other types'
        )
    return types


WebhookUrl = Annotated[
    str,
    BeforeValidator(_text(MAX_URL_LENGTH)),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_URL_LENGTH,
            # Printable ASCII, a host (a name, an IPv4 address or a bracketed IPv6 one)
            # and an optional port: the shape of what `shared.webhooks.urls` accepts.
            "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._\-\[\]:]+([/?#][!-\[\]-~]*)?$",
            "description": "An http(s) URL. Unless the installation allows private "
            "receivers, its host must be or resolve to public addresses only "
            "(`webhook_url_not_allowed` otherwise)",
            "examples": ["https://example.com/paysys/webhooks"],
        }
    ),
]
EventTypes = Annotated[
    list[Annotated[str, BeforeValidator(_subscribable)]],
    Field(min_length=1, max_length=len(EVENT_TYPES)),
    AfterValidator(_one_subscription),
    WithJsonSchema(
        {
            "oneOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "enum": list(EVENT_TYPES)},
                    "minItems": 1,
                    "maxItems": len(EVENT_TYPES),
                    "uniqueItems": True,
                },
                {
                    "type": "array",
                    "items": {"type": "string", "enum": [ALL_TYPES]},
                    "minItems": 1,
                    "maxItems": 1,
                },
            ],
            "description": 'The event types to receive, or ["*"] for every type',
        }
    ),
]
Description = Annotated[
    str,
    BeforeValidator(_text(MAX_DESCRIPTION_LENGTH)),
    WithJsonSchema(
        {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH, "pattern": r"^[^\u0000]*$"}
    ),
]


class WebhookEndpointCreate(RequestModel):
    model_config = examples(
        {
            "url": "https://example.com/paysys/webhooks",
            "event_types": ["operation.succeeded", "operation.failed"],
            "description": "Order service",
        },
        {"url": "https://example.com/paysys/all", "event_types": ["*"]},
    )
    url: WebhookUrl
    event_types: EventTypes
    description: Description | None = None


class RedeliveryCreate(RequestModel):
    model_config = examples({"event_id": "0193a0c5-1f03-7e4f-9a1b-c2d3e4f5a6b7"})
    event_id: UUID
