"""Webhook endpoints over HTTP (API.md, "Events and webhooks"): registration and its
refusals, reads, pages, deletion, re-enabling, the delivery log and redelivery by hand,
each tenant seeing only its own.

The session's stack allows private receivers (its deliveries go to local test servers),
so URLs here point at a closed local port; `strict` is an API process of this module's
own that refuses them, as a production one does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg2.extensions
import pytest

from api.doorbell import Doorbell
from api.webhooks_wake import wake_senders
from devtools.processes import free_port, wait_ready
from shared.doorbell import webhooks_doorbell_key
from shared.queue import WEBHOOKS_TASK, webhooks_queue
from shared.settings import Settings
from tests.conftest import Stack, query
from tests.helpers import Api, assert_problem
from tests.stack import Service

Conn = psycopg2.extensions.connection
ENDPOINTS = "/v1/webhook-endpoints"
URL = "http://127.0.0.1:9/paysys/hooks"  # the discard port: nothing answers there
FIELDS = {"id", "url", "event_types", "description", "created_at", "status", "disabled_reason"}
UNKNOWN = "0191a1c2-0000-7000-8000-00000000beef"


def register(api: Api, url: str = URL, event_types: Any = ("*",), **extra: Any) -> Any:
    return api.post(ENDPOINTS, {"url": url, "event_types": list(event_types), **extra})


def registered(api: Api, **kw: Any) -> dict[str, Any]:
    response = register(api, **kw)
    assert response.status_code == 201, response.text
    return dict(response.json())


def path(endpoint: dict[str, Any], tail: str = "") -> str:
    return f"{ENDPOINTS}/{endpoint['id']}{tail}"


def tenant_of(db: Conn, endpoint: dict[str, Any]) -> str:
    [(tenant,)] = query(db, "SELECT tenant_id FROM webhook_endpoint WHERE id = %s", endpoint["id"])
    return str(tenant)


def account_event(api: Api, db: Conn) -> str:
    """The id of a new event of the tenant's: its account.created (written with the
    account, so there at once). The tests' endpoints subscribe to other types, so that no
    fan-out makes deliveries of it behind their backs."""
    account = api.create_account("evented")
    [(event_id,)] = query(
        db,
        "SELECT id FROM event WHERE type = 'account.created' AND data->>'id' = %s",
        account["id"],
    )
    return str(event_id)


# --- registration ------------------------------------------------------------------------


def test_registration_shows_the_secret_once(api: Api, db: Conn) -> None:
    before = datetime.now(UTC)
    response = register(
        api, event_types=["operation.succeeded", "operation.failed"], description="orders"
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == FIELDS | {"secret"}
    assert response.headers["location"] == path(created)
    assert created["url"] == URL
    assert created["event_types"] == ["operation.succeeded", "operation.failed"]
    assert (created["description"], created["status"]) == ("orders", "enabled")
    assert created["disabled_reason"] is None
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 49
    created_at = datetime.fromisoformat(created["created_at"])
    assert before - timedelta(seconds=1) <= created_at <= datetime.now(UTC) + timedelta(seconds=1)

    shown = api.get(path(created))
    assert shown.status_code == 200, shown.text
    assert shown.json() == {k: v for k, v in created.items() if k != "secret"}
    assert created["secret"] not in shown.text
    assert created["secret"] not in api.get(ENDPOINTS).text
    # Stored sealed (in the clear only when no key is configured), fanned out from now.
    [(secret, seq, xid)] = query(
        db,
        "SELECT secret, fanout_seq, fanout_xid::text FROM webhook_endpoint WHERE id = %s",
        created["id"],
    )
    assert secret == "plain:" + created["secret"] or (
        secret.startswith("fernet:") and created["secret"] not in secret
    )
    assert seq == 0 and int(xid) > 0


def test_defaults_and_every_type(api: Api) -> None:
    every = registered(api, url="HTTPS://Example.com:8443/x?y=1")
    assert every["url"] == "https://Example.com:8443/x?y=1"  # the scheme in lower case
    assert (every["event_types"], every["description"]) == (["*"], None)
    types = [
        "account.created",
        "operation.succeeded",
        "operation.failed",
        "batch.completed",
        "hold.expired",
    ]
    assert registered(api, event_types=types, description=None)["event_types"] == types
    assert registered(api, description="")["description"] == ""
    assert registered(api, description="é" * 500)["description"] == "é" * 500


@pytest.mark.parametrize(
    ("event_types", "loc"),
    [
        (["account.deleted"], ["body", "event_types", 0]),
        (["operation.succeeded", "Operation.Failed"], ["body", "event_types", 1]),
        ([], ["body", "event_types"]),
        (["operation.failed", "operation.failed"], ["body", "event_types"]),
        (["*", "*"], ["body", "event_types"]),
        (["*", "account.created"], ["body", "event_types"]),
        (["account.created", "*"], ["body", "event_types"]),
        ("*", ["body", "event_types"]),
        ([1], ["body", "event_types", 0]),
        ([None], ["body", "event_types", 0]),
        ([["*"]], ["body", "event_types", 0]),
        (None, ["body", "event_types"]),
    ],
)
def test_bad_event_types_are_refused(api: Api, event_types: Any, loc: list[Any]) -> None:
    response = api.post(ENDPOINTS, {"url": URL, "event_types": event_types})
    body = assert_problem(response, 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [loc], body


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"event_types": ["*"]}, ["body", "url"]),
        ({"url": None, "event_types": ["*"]}, ["body", "url"]),
        ({"url": 42, "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://a.example/" + "x" * 2031, "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://a.example/\u0000", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "http://", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://:443/x", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://me:pw@a.example/", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://a.example:99999/", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://a.example/ x", "event_types": ["*"]}, ["body", "url"]),
        ({"url": "https://2130706433/", "event_types": ["*"]}, ["body", "url"]),
        ({"url": URL}, ["body", "event_types"]),
        ({"url": URL, "event_types": ["*"], "description": "d" * 501}, ["body", "description"]),
        ({"url": URL, "event_types": ["*"], "description": 7}, ["body", "description"]),
        ({"url": URL, "event_types": ["*"], "description": "a\u0000"}, ["body", "description"]),
        ({"url": URL, "event_types": ["*"], "secret": "whsec_mine"}, ["body", "secret"]),
        ({"url": URL, "event_types": ["*"], "enabled": False}, ["body", "enabled"]),
    ],
)
def test_bad_bodies_are_refused(api: Api, payload: dict[str, Any], loc: list[Any]) -> None:
    body = assert_problem(api.post(ENDPOINTS, payload), 422, "validation_error")
    assert loc in [e["loc"] for e in body["errors"]], body


@pytest.mark.parametrize(
    "content", [b"", b"[]", b'"https://a.example/"', b"{", b'{"url": "x", "url": "y"}']
)
def test_malformed_json_is_refused(api: Api, content: bytes) -> None:
    response = api.http.post(
        ENDPOINTS, content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    "url", ["ftp://a.example/x", "file:///etc/passwd", "javascript:alert(1)", "a.example/x"]
)
def test_only_http_and_https_urls(api: Api, url: str) -> None:
    body = assert_problem(register(api, url=url), 422, "webhook_url_not_allowed")
    assert "http:// or https://" in body["detail"]


def test_a_tenant_has_at_most_20_endpoints(api: Api) -> None:
    first = registered(api)
    for _ in range(19):
        registered(api)
    refused = assert_problem(register(api), 422, "validation_error")
    assert "at most 20" in refused["detail"]
    assert api.http.delete(path(first)).status_code == 204
    last = registered(api)  # a deleted one leaves its place
    assert_problem(register(api), 422, "validation_error")
    assert len(api.pages(ENDPOINTS)) == 20
    assert first["id"] not in {e["id"] for e in api.pages(ENDPOINTS)}
    assert last["id"] in {e["id"] for e in api.pages(ENDPOINTS)}


# --- private receivers, on an API that refuses them ----------------------------------------


@pytest.fixture(scope="module")
def strict(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of an API process with PAYSYS_WEBHOOK_ALLOW_PRIVATE=false, on the
    stack's database and Redis."""
    port = free_port()
    env = {**stack.env, "PAYSYS_WEBHOOK_ALLOW_PRIVATE": "false"}
    service = Service(
        "strict-api", ["api", "--port", str(port)], env, tmp_path_factory.mktemp("strict")
    )
    service.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://127.0.0.1:9/hooks", "127.0.0.1 is not a public address"),
        ("http://10.1.2.3/hooks", "10.1.2.3 is not a public address"),
        ("http://192.168.1.10:8080/hooks", "192.168.1.10 is not a public address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is not a public address"),
        ("http://[::1]:9/hooks", "::1 is not a public address"),
        ("http://[fd00::1]/hooks", "fd00::1 is not a public address"),
        ("http://[::ffff:127.0.0.1]/hooks", "is not a public address"),
        ("http://localhost:9/hooks", "localhost is the loopback"),
        ("https://hooks.nonexistent.invalid/x", "does not resolve"),
        ("gopher://127.0.0.1:70/x", "http:// or https://"),
    ],
)
def test_private_receivers_are_refused(strict: str, api: Api, url: str, detail: str) -> None:
    strict_api = Api(strict, api.api_key)
    try:
        body = assert_problem(register(strict_api, url=url), 422, "webhook_url_not_allowed")
        assert detail in body["detail"], body
        assert body["title"] == "Webhook URL not allowed"
    finally:
        strict_api.close()
    assert api.pages(ENDPOINTS) == []


def test_a_public_address_is_allowed(strict: str, api: Api) -> None:
    strict_api = Api(strict, api.api_key)
    try:
        created = registered(strict_api, url="https://93.184.216.34/hooks")
        assert created["url"] == "https://93.184.216.34/hooks"
        # Gone at once: no test should ever send anything there.
        assert strict_api.http.delete(path(created)).status_code == 204
    finally:
        strict_api.close()


# --- reading, paging, deleting -----------------------------------------------------------


def test_list_pages_newest_first(api: Api) -> None:
    made = [registered(api, description=f"n{n}")["id"] for n in range(5)]
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.get(ENDPOINTS, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        assert all(set(item) == FIELDS for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    assert sizes == [2, 2, 1]
    default = api.get(ENDPOINTS).json()
    assert [e["id"] for e in default["items"]] == made[::-1] and default["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"limit": 1.5},
        {"cursor": "a" + "0" * 32},
        {"cursor": "w123"},
        {"cursor": "w" + "G" * 32},
        {"cursor": ""},
        {"limt": 10},
    ],
)
def test_bad_list_parameters_are_refused(api: Api, params: dict[str, Any]) -> None:
    assert_problem(api.get(ENDPOINTS, params=params), 422, "validation_error")
    endpoint = registered(api)
    assert_problem(api.get(path(endpoint, "/deliveries"), params=params), 422, "validation_error")


@pytest.mark.parametrize("endpoint_id", ["nope", "123", UNKNOWN + "0"])
def test_bad_ids_are_refused(api: Api, endpoint_id: str) -> None:
    for method, tail in [("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/enable")]:
        response = api.http.request(method, f"{ENDPOINTS}/{endpoint_id}{tail}")
        assert_problem(response, 422, "validation_error")


def test_delete_is_final(api: Api, db: Conn) -> None:
    endpoint = registered(api)
    kept = registered(api)
    response = api.http.delete(path(endpoint))
    assert (response.status_code, response.content) == (204, b"")
    for method, tail, body in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("GET", "/deliveries", None),
        ("POST", "/enable", None),
        ("POST", "/redeliveries", {"event_id": UNKNOWN}),
    ]:
        answer = api.http.request(method, path(endpoint, tail), json=body)
        assert_problem(answer, 404, "not_found")
    assert [e["id"] for e in api.pages(ENDPOINTS)] == [kept["id"]]
    # Kept as a record, marked deleted.
    [(deleted_at,)] = query(
        db, "SELECT deleted_at FROM webhook_endpoint WHERE id = %s", endpoint["id"]
    )
    assert deleted_at is not None


def test_unknown_endpoints_are_not_found(api: Api) -> None:
    for method, tail, body in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("GET", "/deliveries", None),
        ("POST", "/enable", None),
        ("POST", "/redeliveries", {"event_id": UNKNOWN}),
    ]:
        response = api.http.request(method, f"{ENDPOINTS}/{UNKNOWN}{tail}", json=body)
        problem = assert_problem(response, 404, "not_found")
        assert UNKNOWN in problem["detail"]


def test_another_tenant_sees_nothing(api: Api, other_api: Api, db: Conn) -> None:
    # Subscribed to another type than the test's events: no fan-out makes deliveries.
    mine = registered(api, event_types=["hold.expired"])
    event_id = account_event(api, db)
    theirs = registered(other_api, event_types=["hold.expired"])
    for method, tail, body in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("GET", "/deliveries", None),
        ("POST", "/enable", None),
        ("POST", "/redeliveries", {"event_id": event_id}),
    ]:
        answer = other_api.http.request(method, path(mine, tail), json=body)
        problem = assert_problem(answer, 404, "not_found")
        unknown = other_api.http.request(method, f"{ENDPOINTS}/{UNKNOWN}{tail}", json=body)
        assert problem["detail"] == unknown.json()["detail"].replace(UNKNOWN, mine["id"])
    assert [e["id"] for e in other_api.pages(ENDPOINTS)] == [theirs["id"]]
    # Nor can it have its own endpoint sent the first tenant's event.
    answer = other_api.post(path(theirs, "/redeliveries"), {"event_id": event_id})
    assert event_id in assert_problem(answer, 404, "not_found")["detail"]
    assert query(db, "SELECT 1 FROM webhook_delivery WHERE event_id = %s", event_id) == []
    # The first tenant's endpoint is as it was.
    assert api.get(path(mine)).json() == {k: v for k, v in mine.items() if k != "secret"}


# --- enabling, the delivery log, redelivery ------------------------------------------------


def disable(db: Conn, endpoint: dict[str, Any], reason: str) -> None:
    query(
        db,
        "UPDATE webhook_endpoint SET disabled_at = now(), disabled_reason = %s, "
        "failing_since = now() - interval '3 days' WHERE id = %s RETURNING id",
        reason,
        endpoint["id"],
    )


def test_enable_turns_a_disabled_endpoint_back_on(api: Api, db: Conn) -> None:
    endpoint = registered(api)
    same = api.post(path(endpoint, "/enable"), None)  # enabled already: nothing changes
    assert same.status_code == 200, same.text
    assert same.json() == {k: v for k, v in endpoint.items() if k != "secret"}

    disable(db, endpoint, "no delivery succeeded for 72 hours")
    shown = api.get(path(endpoint)).json()
    assert (shown["status"], shown["disabled_reason"]) == (
        "disabled",
        "no delivery succeeded for 72 hours",
    )
    assert api.get(ENDPOINTS).json()["items"][0]["status"] == "disabled"
    enabled = api.post(path(endpoint, "/enable"), None)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json() == {k: v for k, v in endpoint.items() if k != "secret"}
    assert api.get(path(endpoint)).json()["status"] == "enabled"
    [row] = query(
        db,
        "SELECT disabled_at, disabled_reason, failing_since FROM webhook_endpoint WHERE id = %s",
        endpoint["id"],
    )
    assert row == (None, None, None)


def test_the_delivery_log_newest_first(api: Api, db: Conn) -> None:
    # Subscribed to another type: no fan-out or sender touches what this test writes.
    endpoint = registered(api, event_types=["hold.expired"])
    empty = api.get(path(endpoint, "/deliveries"))
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"items": [], "next_cursor": None}

    tenant = tenant_of(db, endpoint)
    event_id = account_event(api, db)
    query(
        db,
        "INSERT INTO webhook_delivery (endpoint_id, event_id, tenant_id, attempts, "
        "delivered_at, event_created_at) VALUES (%s, %s, %s, 2, now(), now()) RETURNING 1",
        endpoint["id"],
        event_id,
        tenant,
    )
    query(
        db,
        "INSERT INTO webhook_attempt (endpoint_id, event_id, tenant_id, attempt, status_code, "
        "error, delivered, next_attempt_at) VALUES "
        "(%s, %s, %s, 1, NULL, 'connection refused', false, now() + interval '10 seconds'), "
        "(%s, %s, %s, 2, 204, NULL, true, NULL) RETURNING 1",
        *(endpoint["id"], event_id, tenant) * 2,
    )
    first = api.get(path(endpoint, "/deliveries"), params={"limit": 1}).json()
    [delivered] = first["items"]
    assert set(delivered) == {
        "event_id",
        "attempt",
        "status_code",
        "error",
        "delivered",
        "created_at",
        "next_attempt_at",
    }
    assert (delivered["event_id"], delivered["attempt"], delivered["status_code"]) == (
        event_id,
        2,
        204,
    )
    assert (delivered["error"], delivered["delivered"], delivered["next_attempt_at"]) == (
        None,
        True,
        None,
    )
    assert first["next_cursor"] is not None
    second = api.get(
        path(endpoint, "/deliveries"), params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    [failed] = second["items"]
    assert (failed["attempt"], failed["status_code"], failed["error"]) == (
        1,
        None,
        "connection refused",
    )
    assert failed["delivered"] is False and failed["next_attempt_at"] is not None
    assert second["next_cursor"] is None


def test_redelivery_by_hand(api: Api, other_api: Api, db: Conn) -> None:
    endpoint = registered(api, event_types=["hold.expired"])
    event_id = account_event(api, db)

    response = api.post(path(endpoint, "/redeliveries"), {"event_id": event_id})
    assert response.status_code == 202, response.text
    delivery = response.json()
    assert delivery == {
        "endpoint_id": endpoint["id"],
        "event_id": event_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": delivery["next_attempt_at"],
        "created_at": delivery["created_at"],
    }
    due = datetime.fromisoformat(delivery["next_attempt_at"])
    assert abs(due - datetime.now(UTC)) < timedelta(seconds=5)

    # Once delivered (or given up), by hand again: due now, its attempts counted on.
    query(
        db,
        "UPDATE webhook_delivery SET attempts = 3, next_attempt_at = NULL, "
        "given_up_at = now() WHERE endpoint_id = %s AND event_id = %s RETURNING 1",
        endpoint["id"],
        event_id,
    )
    again = api.post(path(endpoint, "/redeliveries"), {"event_id": event_id}).json()
    assert (again["status"], again["attempts"]) == ("pending", 3)
    [row] = query(
        db,
        "SELECT delivered_at, given_up_at, next_attempt_at IS NOT NULL FROM webhook_delivery "
        "WHERE endpoint_id = %s AND event_id = %s",
        endpoint["id"],
        event_id,
    )
    assert row[:2] == (None, None)

    # Not the tenant's event, or no event at all: 404.
    theirs = account_event(other_api, db)
    for unknown in (theirs, UNKNOWN):
        answer = api.post(path(endpoint, "/redeliveries"), {"event_id": unknown})
        assert unknown in assert_problem(answer, 404, "not_found")["detail"]
    bad_bodies: list[Any] = [{}, {"event_id": "nope"}, {"event_id": event_id, "x": 1}, []]
    for bad in bad_bodies:
        answer = api.post(path(endpoint, "/redeliveries"), bad)
        assert_problem(answer, 422, "validation_error")


def test_no_redelivery_to_a_disabled_endpoint(api: Api, db: Conn) -> None:
    endpoint = registered(api, event_types=["hold.expired"])
    event_id = account_event(api, db)
    disable(db, endpoint, "failing")
    answer = api.post(path(endpoint, "/redeliveries"), {"event_id": event_id})
    assert "enable" in assert_problem(answer, 422, "validation_error")["detail"]
    assert api.post(path(endpoint, "/enable"), None).status_code == 200
    answer = api.post(path(endpoint, "/redeliveries"), {"event_id": event_id})
    assert answer.status_code == 202, answer.text


# --- waking the senders --------------------------------------------------------------------


class FakeRedis:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    async def set(self, key: str, value: str, *, nx: bool, ex: int) -> bool:
        assert nx and ex > 0
        if key in self.keys:
            return False
        self.keys[key] = value
        return True

    async def delete(self, key: str) -> None:
        self.keys.pop(key, None)


class FakeCelery:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append((name, options))


def test_waking_rings_the_senders_doorbell_once() -> None:
    settings = Settings(redis_prefix="wake-test", celery_queue="q")
    redis, celery = FakeRedis(), FakeCelery()

    async def wake_three_times() -> None:
        doorbell = Doorbell(redis, celery, settings)  # type: ignore[arg-type]
        for _ in range(3):
            wake_senders(doorbell, settings)
            await doorbell.drain()

    asyncio.run(wake_three_times())
    assert redis.keys == {webhooks_doorbell_key(settings): "1"}
    assert celery.sent == [(WEBHOOKS_TASK, {"kwargs": {}, "queue": webhooks_queue(settings)})]
    assert webhooks_queue(settings) == "q.webhooks"


def test_the_api_documents_its_webhook_routes(api: Api) -> None:
    paths = httpx.get(f"{api.base_url}/openapi.json").json()["paths"]
    assert set(paths[ENDPOINTS]) == {"get", "post"}
    assert set(paths[ENDPOINTS + "/{endpoint_id}"]) == {"get", "delete"}
    for tail in ("/enable", "/redeliveries"):
        assert set(paths[ENDPOINTS + "/{endpoint_id}" + tail]) == {"post"}
    assert set(paths[ENDPOINTS + "/{endpoint_id}/deliveries"]) == {"get"}


def test_the_secret_is_not_logged(stack: Stack, api: Api) -> None:
    secret = registered(api)["secret"]
    assert secret not in stack.api.log()
