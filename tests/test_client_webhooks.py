"""The Python client's calls on events and webhook endpoints, against the real service."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest

from paysys.client import (
    ApiError,
    Event,
    EventPage,
    Paysys,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
)
from tests.helpers import Api

URL = "http://127.0.0.1:9/paysys/hooks"  # the discard port: nothing answers there


@pytest.fixture
def client(api: Api) -> Iterator[Paysys]:
    with Paysys(api.base_url, api.api_key) as paysys:
        yield paysys


def test_webhook_endpoints(client: Paysys) -> None:
    created = client.create_webhook_endpoint(URL, ["operation.failed"], description="ops")
    assert isinstance(created, WebhookEndpointCreated)
    assert created.secret.startswith("whsec_")
    assert (created.url, created.event_types, created.description) == (
        URL,
        ["operation.failed"],
        "ops",
    )
    assert (created.status, created.disabled_reason) == ("enabled", None)
    every = client.create_webhook_endpoint(URL)
    assert every.event_types == ["*"] and every.description is None

    shown = client.get_webhook_endpoint(created.id)
    assert type(shown) is WebhookEndpoint
    assert shown == WebhookEndpoint(**{k: v for k, v in vars(created).items() if k != "secret"})
    page = client.list_webhook_endpoints(limit=1)
    assert [e.id for e in page] == [every.id] and page.next_cursor is not None
    rest = client.list_webhook_endpoints(limit=1, cursor=page.next_cursor)
    assert [e.id for e in rest] == [created.id] and rest.next_cursor is None
    log = client.list_webhook_deliveries(created.id)
    assert list(log) == [] and log.next_cursor is None
    assert client.enable_webhook_endpoint(created.id) == shown

    client.delete_webhook_endpoint(created.id)
    with pytest.raises(ApiError) as gone:
        client.get_webhook_endpoint(created.id)
    assert (gone.value.status, gone.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as refused:
        client.create_webhook_endpoint(URL, ["operation.deleted"])
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert refused.value.errors[0]["loc"] == ["body", "event_types", 0]


def test_the_feed_oldest_first_and_tailed(client: Paysys) -> None:
    alice = client.create_account("Alice")
    bob = client.create_account("Bob")
    tail = client.iter_events(types=["account.created"], wait=5)
    events = list(itertools.islice(tail, 2))
    assert all(isinstance(e, Event) for e in events)
    assert [(e.type, e.data["id"]) for e in events] == [
        ("account.created", alice.id),
        ("account.created", bob.id),
    ]
    assert events[0].data["wallet"]["balance"] == "0.00"

    first = client.list_events(types=["account.created"], limit=1)
    assert isinstance(first, EventPage) and [e.id for e in first] == [events[0].id]
    second = client.list_events(first.next_cursor, limit=1)
    assert [e.id for e in second] == [events[1].id]
    started = time.monotonic()
    idle = client.list_events(second.next_cursor, wait=1)
    assert list(idle) == [] and idle.next_cursor  # always set: ask again with it
    assert time.monotonic() - started >= 0.9
    with pytest.raises(ApiError) as refused:
        client.list_events(types=["account.deleted"])
    assert (refused.value.status, refused.value.code) == (422, "validation_error")


def test_redelivery(client: Paysys) -> None:
    client.create_account("Carol")
    [event] = client.list_events(types=["account.created"], wait=5)
    # Subscribed to another type: the event reaches it only because it is asked for.
    endpoint = client.create_webhook_endpoint(URL, ["hold.expired"])
    delivery = client.redeliver(endpoint.id, event.id)
    assert isinstance(delivery, WebhookDelivery)
    assert (delivery.endpoint_id, delivery.event_id, delivery.status) == (
        endpoint.id,
        event.id,
        "pending",
    )
    assert delivery.attempts == 0 and delivery.next_attempt_at is not None
    with pytest.raises(ApiError) as unknown:
        client.redeliver(endpoint.id, "0191a1c2-0000-7000-8000-00000000beef")
    assert unknown.value.status == 404


def test_tailing_pauses_when_a_long_poll_comes_back_empty_early() -> None:
    """A server that answers a long poll at once with no items (it woke for events of
    other types, say) is asked again after a short pause, not in a tight loop."""
    asked: list[float] = []
    event = {
        "id": "0191a1c2-0000-7000-8000-00000000e001",
        "type": "account.created",
        "created_at": "2026-12-02T10:00:00Z",
        "data": {"id": "0191a1c2-0000-7000-8000-00000000aaaa"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(time.monotonic())
        items = [event] if len(asked) > 3 else []
        return httpx.Response(200, json={"items": items, "next_cursor": f"c{len(asked)}"})

    with Paysys("http://paysys.test", "key", transport=httpx.MockTransport(handler)) as paysys:
        first = next(paysys.iter_events(types=["account.created"], wait=5))
    assert first.id == event["id"] and len(asked) == 4
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert all(gap >= 0.45 for gap in gaps), gaps
