"""Tenant isolation, over the route table itself: every /v1 route is tried with a second
tenant's key against the first tenant's resources. A route this test does not know how to
exercise fails it, so a new route cannot ship without its isolation being checked."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from api.app import create_app
from tests.helpers import Api, assert_problem, new_key

# Every operation the app serves under /v1, as its OpenAPI schema lists them.
ROUTES = sorted(
    (method.upper(), path)
    for path, item in create_app().openapi()["paths"].items()
    if path.startswith("/v1")
    for method in item
)
assert len(ROUTES) >= 10, "the route table could not be read"
LONG_POLLS = {
    (method.upper(), path)
    for path, item in create_app().openapi()["paths"].items()
    for method, operation in item.items()
    if any(p["name"] == "wait" for p in operation.get("parameters", []))
}

# What each path parameter names: the first tenant's resource of that kind.
PARAMETERS = {
    "account_id",
    "wallet_id",
    "operation_id",
    "batch_id",
    "hold_id",
    "endpoint_id",
    "event_id",
}

Ids = dict[str, str]
# Routes without path parameters: the request that names the first tenant's resources, and
# the answer the second tenant must get (status, code), or None for "check the listing".
UNPARAMETERISED: dict[tuple[str, str], tuple[Callable[[Ids, Ids], Any], int | None, str]] = {
    ("POST", "/v1/transfers"): (
        lambda a, b: {
            "from_wallet_id": a["wallet_id"],
            "to_wallet_id": b["wallet_id"],
            "amount": "1.00",
        },
        404,
        "not_found",
    ),
    ("POST", "/v1/holds"): (
        lambda a, b: {
            "from_wallet_id": a["wallet_id"],
            "to_wallet_id": b["wallet_id"],
            "amount": "1.00",
        },
        404,
        "not_found",
    ),
    ("POST", "/v1/replenishment-batches"): (
        lambda a, b: {"items": [{"wallet_id": a["wallet_id"], "amount": "1.00"}]},
        422,
        "validation_error",
    ),
    ("POST", "/v1/replenishment-batch-validations"): (
        lambda a, b: {"items": [{"wallet_id": a["wallet_id"], "amount": "1.00"}]},
        422,
        "validation_error",
    ),
    ("POST", "/v1/accounts"): (lambda a, b: {"name": "mine"}, None, "creates its own"),
    ("GET", "/v1/accounts"): (lambda a, b: None, None, "lists its own"),
    ("POST", "/v1/webhook-endpoints"): (
        lambda a, b: {"url": "http://127.0.0.1:9/second", "event_types": ["*"]},
        None,
        "creates its own",
    ),
    ("GET", "/v1/webhook-endpoints"): (lambda a, b: None, None, "lists its own"),
    ("GET", "/v1/events"): (lambda a, b: None, None, "lists its own"),
}
# Bodies for routes with path parameters that take one.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/wallets/{wallet_id}/replenishments"): {"amount": "1.00"},
    ("POST", "/v1/wallets/{wallet_id}/withdrawals"): {"amount": "1.00"},
    ("POST", "/v1/holds/{hold_id}/capture"): {},
    ("POST", "/v1/holds/{hold_id}/void"): {},
    ("POST", "/v1/operations/{operation_id}/reversals"): {},
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/enable"): {},
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/redeliveries"): {
        "event_id": "0191a1c2-0000-7000-8000-00000000e7e1"
    },
}


@pytest.fixture(scope="module")
def first(stack: Any) -> Ids:
    from tests.conftest import make_api

    api = make_api(stack)
    account = api.create_account("first tenant")
    wallet = account["wallet"]["id"]
    operation = api.replenish(wallet, "10.00").json()["id"]
    api.wait(operation)
    batch = api.post(
        "/v1/replenishment-batches",
        {"items": [{"wallet_id": wallet, "amount": "1.00"}]},
        key=new_key(),
    ).json()
    while batch["status"] != "completed":  # applied before the others start poking at it
        batch = api.get(f"/v1/replenishment-batches/{batch['id']}", params={"wait": 5}).json()
    hold = api.post(
        "/v1/holds", {"from_wallet_id": wallet, "amount": "1.00"}, key=new_key()
    ).json()["id"]
    api.wait(hold)
    endpoint = api.post(
        "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/first", "event_types": ["*"]}
    ).json()["id"]
    ids = {
        "account_id": account["id"],
        "wallet_id": wallet,
        "operation_id": operation,
        "batch_id": batch["id"],
        "hold_id": hold,
        "endpoint_id": endpoint,
        "api_key": api.api_key,
        "base_url": api.base_url,
    }
    # The feed serves an event once older transactions have ended: wait for it.
    params = {"type": "account.created", "wait": 10}
    events = api.get("/v1/events", params=params).json()["items"]
    ids["event_id"] = events[0]["id"]
    api.close()
    return ids


def test_every_route_is_covered() -> None:
    for method, path in ROUTES:
        parameters = set(re.findall(r"{(\w+)}", path))
        unknown = parameters - PARAMETERS
        assert not unknown, f"{method} {path}: no isolation case for {unknown}"
        if not parameters:
            assert (method, path) in UNPARAMETERISED, f"{method} {path}: no isolation case"
        elif method == "POST":
            assert (method, path) in BODIES, f"{method} {path}: no body to try"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_second_tenant_sees_nothing_of_the_first(
    first: Ids, other_api: Api, method: str, path: str
) -> None:
    mine = other_api.create_account("second tenant")
    b = {"account_id": mine["id"], "wallet_id": mine["wallet"]["id"]}
    if "{" in path:
        url = re.sub(r"{(\w+)}", lambda m: first[m[1]], path)
        body = BODIES.get((method, path))
        response = other_api.http.request(
            method, url, json=body, headers={"Idempotency-Key": new_key()}
        )
        assert_problem(response, 404, "not_found")
        if (method, path) in LONG_POLLS:
            assert_problem(other_api.get(url, params={"wait": 1}), 404, "not_found")
        return
    make_body, status, code = UNPARAMETERISED[(method, path)]
    body = make_body(first, b)
    response = other_api.http.request(
        method, path, json=body, headers={"Idempotency-Key": new_key()}
    )
    text = response.text
    for kind in sorted(PARAMETERS):
        assert first[kind] not in text or status is not None, f"{path} leaked {kind}"
    if status is not None:
        assert_problem(response, status, code)
    else:
        assert response.status_code in (200, 201)


def test_first_tenant_is_untouched(first: Ids, stack: Any) -> None:
    api = Api(first["base_url"], first["api_key"])
    wallet = api.wallet(first["wallet_id"])
    assert wallet["balance"] == "11.00"  # its own replenishment and its own batch only
    assert wallet["held"] == "1.00"  # and its own hold, still held
    assert len(api.postings(first["wallet_id"])) == 2
    endpoint = api.get(f"/v1/webhook-endpoints/{first['endpoint_id']}").json()
    assert endpoint["status"] == "enabled"  # not deleted, nor disabled
    api.close()
