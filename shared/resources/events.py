"""The event as the feed serves it and webhooks deliver it: the same bytes both ways."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from shared.events import EVENT_TYPES

EventType = Annotated[str, WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)})]


class Event(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0c5-1f03-7e4f-9a1b-c2d3e4f5a6b7",
                    "type": "account.created",
                    "created_at": "2026-11-25T10:15:30.123456Z",
                    "data": {
                        "id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                        "name": "Alice",
                        "created_at": "2026-11-25T10:15:30.123456Z",
                        "wallet": {
                            "id": "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01",
                            "account_id": "0193a0c4-2b1e-7b11-a0f2-4c1d7a6b5e90",
                            "currency": "USD",
                            "balance": "0.00",
                            "held": "0.00",
                            "available": "0.00",
                            "updated_at": "2026-11-25T10:15:30.123456Z",
                        },
                    },
                }
            ]
        }
    )
    id: uuid.UUID
    type: EventType
    created_at: datetime
    data: dict[str, Any] = Field(
        description="The resource as it was at that moment: an Account, an Operation, a "
        "Batch or a Hold, as the API serves it"
    )


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str = Field(description="Always set: call again with it to tail the feed")


def event(event_id: uuid.UUID, event_type: str, created_at: datetime, data: str) -> Event:
    """An event row (its `data` as stored, JSON text) as its model."""
    return Event.model_construct(
        id=event_id, type=event_type, created_at=created_at, data=orjson.loads(data)
    )


def event_body(event_id: uuid.UUID, event_type: str, created_at: datetime, data: str) -> bytes:
    """An event's JSON, exactly as the feed serves it and a webhook delivery's body."""
    model = event(event_id, event_type, created_at, data)
    return model.__pydantic_serializer__.to_json(model)
