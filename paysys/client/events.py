"""The client's calls on events and webhook endpoints, a part of `Paysys` (which inherits
them): the ordered feed (`list_events`, and `iter_events` to tail it), and the endpoints
paysys POSTs events to, with their delivery logs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from paysys.client.event_models import (
    Event,
    EventPage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
)
from paysys.client.http import RetryingHttp
from paysys.client.models import Page

# How long `iter_events` pauses after an empty page when it does not long poll, and after
# a long poll that came back empty before its wait.
IDLE_PAUSE = 1.0
EARLY_EMPTY_PAUSE = 0.5


class EventsAndWebhooks:
    _http: RetryingHttp

    # --- the event feed ------------------------------------------------------------------

    def list_events(
        self,
        cursor: str | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
        wait: float | None = None,
    ) -> EventPage:
        """The tenant's events after `cursor` (from the beginning without one), oldest
        first, only of `types` if given. With `wait` (0-30 seconds), a call that finds
        nothing new answers as soon as there is, or after that long with no items. The
        page's `next_cursor` is always set: pass it to the next call."""
        params: dict[str, Any] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if types is not None:
            params["type"] = list(types)
        if limit is not None:
            params["limit"] = limit
        if wait:
            params["wait"] = wait
        body = self._http.json("GET", "/v1/events", params=params)
        return EventPage([Event.parse(item) for item in body["items"]], body["next_cursor"])

    def iter_events(
        self,
        cursor: str | None = None,
        types: Iterable[str] | None = None,
        wait: float = 30,
    ) -> Iterator[Event]:
        """Every event after `cursor`, in order, forever: long polls for new ones `wait`
        seconds at a time. To resume after a restart, keep the cursor of the last page
        handled (`list_events`) rather than an event."""
        wanted = None if types is None else list(types)
        while True:
            asked = time.monotonic()
            page = self.list_events(cursor, wanted, limit=200, wait=wait)
            yield from page
            cursor = page.next_cursor
            if page:
                continue
            if not wait:
                time.sleep(IDLE_PAUSE)
            elif time.monotonic() - asked < wait:
                # Empty before its wait was up (the server woke for events of other types,
                # or answered at once): ask again, but not in a tight loop.
                time.sleep(EARLY_EMPTY_PAUSE)

    # --- webhook endpoints ---------------------------------------------------------------

    def create_webhook_endpoint(
        self,
        url: str,
        event_types: Iterable[str] = ("*",),
        description: str | None = None,
    ) -> WebhookEndpointCreated:
        """Register `url` for the events of `event_types` (["*"]: every type) created from
        now on. The answer's `secret` signs the deliveries (see `verify_webhook`); it is
        never shown again. Not retried once it may have reached paysys (a second
        registration would be a second endpoint): after a network error, list the
        endpoints to see whether it was made."""
        payload: dict[str, Any] = {"url": url, "event_types": list(event_types)}
        if description is not None:
            payload["description"] = description
        body = self._http.json("POST", "/v1/webhook-endpoints", json=payload)
        return WebhookEndpointCreated.parse(body)

    def list_webhook_endpoints(
        self, *, limit: int = 50, cursor: str | None = None
    ) -> Page[WebhookEndpoint]:
        body = self._http.json("GET", "/v1/webhook-endpoints", params=_page(limit, cursor))
        return Page([WebhookEndpoint.parse(i) for i in body["items"]], body["next_cursor"])

    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        return WebhookEndpoint.parse(self._http.json("GET", _path(endpoint_id)))

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Nothing more is sent to it; it is gone from the API (404) from then on."""
        self._http.send("DELETE", _path(endpoint_id))

    def enable_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint:
        """Turn on again an endpoint that was disabled after failing for too long."""
        return WebhookEndpoint.parse(
            self._http.json("POST", _path(endpoint_id, "/enable"), idempotent=True)
        )

    def list_webhook_deliveries(
        self, endpoint_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[WebhookAttempt]:
        """The endpoint's delivery attempts, newest first."""
        body = self._http.json(
            "GET", _path(endpoint_id, "/deliveries"), params=_page(limit, cursor)
        )
        return Page([WebhookAttempt.parse(i) for i in body["items"]], body["next_cursor"])

    def redeliver(self, endpoint_id: str, event_id: str) -> WebhookDelivery:
        """Send one of the tenant's events to the endpoint again, as soon as possible
        (its attempts show in `list_webhook_deliveries`)."""
        body = self._http.json(  # asked twice, it is still one delivery, due now
            "POST",
            _path(endpoint_id, "/redeliveries"),
            json={"event_id": event_id},
            idempotent=True,
        )
        return WebhookDelivery.parse(body)


def _path(endpoint_id: str, tail: str = "") -> str:
    return f"/v1/webhook-endpoints/{endpoint_id}{tail}"


def _page(limit: int, cursor: str | None) -> dict[str, Any]:
    return {"limit": limit, "cursor": cursor} if cursor else {"limit": limit}
