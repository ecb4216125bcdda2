"""What the API answers about events and webhooks, as the client parses it (in the manner
of `paysys.client.models`, whose `Model` reads each field by its API name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paysys.client.models import Model, Page


@dataclass(frozen=True)
class Event(Model):
    """A change of state: `data` is the resource (an Account, an Operation, a Batch or a
    Hold, as the API serves it) as it was at that moment, as decoded JSON."""

    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]


class EventPage(Page[Event]):
    """Events oldest first; `next_cursor` is always set: ask again with it for what comes
    next (nothing is skipped, nothing seen twice)."""

    next_cursor: str

    def __init__(self, items: list[Event], next_cursor: str):
        super().__init__(items, next_cursor)


@dataclass(frozen=True)
class WebhookEndpoint(Model):
    id: str
    url: str
    # The event types it receives; ["*"] for every type.
    event_types: list[str]
    description: str | None
    created_at: datetime
    # "enabled", or "disabled" after its deliveries failed for too long (see
    # `enable_webhook_endpoint`), with `disabled_reason` saying why.
    status: str
    disabled_reason: str | None


@dataclass(frozen=True)
class WebhookEndpointCreated(WebhookEndpoint):
    """A newly registered endpoint, with the secret its deliveries are signed with: keep
    it, the API never shows it again (`verify_webhook` needs it)."""

    secret: str


@dataclass(frozen=True)
class WebhookAttempt(Model):
    """One attempt at delivering an event: `attempt` counts from 1 for each event."""

    event_id: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    created_at: datetime
    # When it is tried again; None once delivered or given up.
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class WebhookDelivery(Model):
    """An event's delivery to an endpoint: "pending", "delivered" or "given_up"."""

    endpoint_id: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime


MODELS: tuple[type[Model], ...] = (
    Event,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookAttempt,
    WebhookDelivery,
)
