"""Webhook endpoints, their delivery attempts and redeliveries as the API serves them: the
response models (`/openapi.json` documents these) and the rendering of rows into them, in
the manner of `schemas` and `serialize`. An endpoint's secret is in one answer only, the
one to its registration (`WebhookEndpointCreated`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from shared.asyncdb import Record
from shared.events import EVENT_TYPES

SubscribedType = Annotated[str, WithJsonSchema({"type": "string", "enum": ["*", *EVENT_TYPES]})]

_ENDPOINT_EXAMPLE: dict[str, JsonValue] = {
    "id": "0193a0c8-4d00-7e1f-8a2b-c3d4e5f6a7b8",
    "url": "https://example.com/paysys/webhooks",
    "event_types": ["operation.succeeded", "operation.failed"],
    "description": "Order service",
    "created_at": "2026-11-25T10:15:30.123456Z",
    "status": "enabled",
    "disabled_reason": None,
}


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT_EXAMPLE]})
    id: uuid.UUID
    url: str
    event_types: list[SubscribedType] = Field(
        description='The event types it receives; ["*"] for every type, present and future'
    )
    description: str | None
    created_at: datetime
    status: Literal["enabled", "disabled"] = Field(
        description="disabled after its deliveries have all failed for too long; "
        "POST .../enable turns it back on"
    )
    disabled_reason: str | None


class WebhookEndpointCreated(WebhookEndpoint):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_ENDPOINT_EXAMPLE, "secret": "whsec_6Zq0oXh2c7X3rRkq9s0d1F4mB8vJp2TnW5yA7eL3uQk"}
            ]
        }
    )
    secret: str = Field(
        description="The signing secret (whsec_...): shown in this answer only. Deliveries "
        "carry Paysys-Signature, an HMAC-SHA256 keyed with it"
    )


class WebhookEndpointPage(BaseModel):
    items: list[WebhookEndpoint]
    next_cursor: str | None


class WebhookAttempt(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0193a0c5-1f03-7e4f-9a1b-c2d3e4f5a6b7",
                    "attempt": 2,
                    "status_code": 503,
                    "error": "HTTP 503",
                    "delivered": False,
                    "created_at": "2026-11-25T10:15:41.002311Z",
                    "next_attempt_at": "2026-11-25T10:16:01.002311Z",
                }
            ]
        }
    )
    event_id: uuid.UUID
    attempt: int = Field(description="Counts from 1 for each event")
    status_code: int | None = Field(description="The receiver's answer; null if none came")
    error: str | None
    delivered: bool
    created_at: datetime
    next_attempt_at: datetime | None = Field(
        description="When it is tried again; null once delivered or given up"
    )


class WebhookAttemptPage(BaseModel):
    items: list[WebhookAttempt]
    next_cursor: str | None


class WebhookDelivery(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "endpoint_id": "0193a0c8-4d00-7e1f-8a2b-c3d4e5f6a7b8",
                    "event_id": "0193a0c5-1f03-7e4f-9a1b-c2d3e4f5a6b7",
                    "status": "pending",
                    "attempts": 3,
                    "next_attempt_at": "2026-11-25T11:00:00.000000Z",
                    "created_at": "2026-11-25T10:15:31.000000Z",
                }
            ]
        }
    )
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    status: Literal["pending", "delivered", "given_up"]
    attempts: int = Field(description="Attempts made so far; the next one is attempts + 1")
    next_attempt_at: datetime | None
    created_at: datetime


def endpoint(row: Record) -> WebhookEndpoint:
    return WebhookEndpoint.model_construct(**_endpoint_fields(row))


def endpoint_created(row: Record, secret: str) -> WebhookEndpointCreated:
    return WebhookEndpointCreated.model_construct(**_endpoint_fields(row), secret=secret)


def _endpoint_fields(row: Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "description": row["description"],
        "created_at": row["created_at"],
        "status": "disabled" if row["disabled_at"] is not None else "enabled",
        "disabled_reason": row["disabled_reason"],
    }


def attempt(row: Record) -> WebhookAttempt:
    return WebhookAttempt.model_construct(
        event_id=row["event_id"],
        attempt=row["attempt"],
        status_code=row["status_code"],
        error=row["error"],
        delivered=row["delivered"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
    )


def delivery(row: Record) -> WebhookDelivery:
    status: Literal["pending", "delivered", "given_up"]
    if row["delivered_at"] is not None:
        status = "delivered"
    elif row["given_up_at"] is not None:
        status = "given_up"
    else:
        status = "pending"
    return WebhookDelivery.model_construct(
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        status=status,
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
    )


def endpoint_cursor(endpoint_id: uuid.UUID) -> str:
    return f"w{endpoint_id.hex}"


def decode_endpoint_cursor(cursor: str | None) -> uuid.UUID | None:
    """A cursor the route's pattern already checked."""
    return None if cursor is None else uuid.UUID(hex=cursor[1:])
