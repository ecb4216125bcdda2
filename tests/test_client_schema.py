"""The Python client's models held against the API's OpenAPI schema: a field that the API
adds, renames or drops in an answer, or stops taking in a request, fails here until the
client follows. (The models are the client's own copy of the response shapes, so that it
needs nothing of the server; this is what keeps the two the same.)"""

from __future__ import annotations

import json
import typing
from typing import Any

import httpx
import pytest

from api.app import create_app
from paysys.client import Paysys
from paysys.client.event_models import MODELS as EVENT_MODELS
from paysys.client.event_models import (
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreated,
)
from paysys.client.models import (
    MODELS,
    Account,
    Batch,
    BatchItem,
    Hold,
    Model,
    Operation,
    Posting,
    Wallet,
)

SCHEMA: dict[str, Any] = create_app().openapi()
WALLET = "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01"
OTHER_WALLET = "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12"
HOLD = "0193a0c7-0b00-7c1d-8e2f-a3b4c5d6e7f8"
OPERATION = "0193a0c5-1f00-7a2b-b3c4-d5e6f7a8b9c0"
ENDPOINT = "0193a0c8-4d00-7e1f-8a2b-c3d4e5f6a7b8"
EVENT = "0193a0c5-1f03-7e4f-9a1b-c2d3e4f5a6b7"
# The ids the client puts in a path, and the parameter each stands for.
PATH_IDS = {
    WALLET: "{wallet_id}",
    HOLD: "{hold_id}",
    OPERATION: "{operation_id}",
    ENDPOINT: "{endpoint_id}",
}

# Each answer the client parses: the route, its success status, the model it becomes, and
# whether it is a page of them.
READS: list[tuple[str, str, str, type[Model], bool]] = [
    ("POST", "/v1/accounts", "201", Account, False),
    ("GET", "/v1/accounts", "200", Account, True),
    ("GET", "/v1/accounts/{account_id}", "200", Account, False),
    ("GET", "/v1/wallets/{wallet_id}", "200", Wallet, False),
    ("GET", "/v1/wallets/{wallet_id}/postings", "200", Posting, True),
    ("POST", "/v1/wallets/{wallet_id}/replenishments", "202", Operation, False),
    ("POST", "/v1/transfers", "202", Operation, False),
    ("POST", "/v1/wallets/{wallet_id}/withdrawals", "202", Operation, False),
    ("POST", "/v1/holds", "202", Operation, False),
    ("GET", "/v1/holds/{hold_id}", "200", Hold, False),
    ("POST", "/v1/holds/{hold_id}/capture", "202", Operation, False),
    ("POST", "/v1/holds/{hold_id}/void", "202", Operation, False),
    ("POST", "/v1/operations/{operation_id}/reversals", "202", Operation, False),
    ("GET", "/v1/operations/{operation_id}", "200", Operation, False),
    ("POST", "/v1/replenishment-batches", "202", Batch, False),
    ("GET", "/v1/replenishment-batches/{batch_id}", "200", Batch, False),
    ("GET", "/v1/replenishment-batches/{batch_id}/operations", "200", Operation, True),
    ("GET", "/v1/events", "200", Event, True),
    ("POST", "/v1/webhook-endpoints", "201", WebhookEndpointCreated, False),
    ("GET", "/v1/webhook-endpoints", "200", WebhookEndpoint, True),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}", "200", WebhookEndpoint, False),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/enable", "200", WebhookEndpoint, False),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries", "200", WebhookAttempt, True),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/redeliveries", "202", WebhookDelivery, False),
]


def component(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])


def operation(method: str, path: str) -> dict[str, Any]:
    assert path in SCHEMA["paths"], f"the API has no route {path}"
    return dict(SCHEMA["paths"][path][method.lower()])


def answer(method: str, path: str, status: str) -> dict[str, Any]:
    responses = operation(method, path)["responses"]
    assert status in responses, f"{method} {path} no longer answers {status}"
    return component(responses[status]["content"]["application/json"]["schema"])


def request_body(method: str, path: str) -> dict[str, Any]:
    body = operation(method, path)["requestBody"]["content"]["application/json"]["schema"]
    return component(body)


def nested_models(model: type[Model]) -> dict[str, type[Model]]:
    hints = typing.get_type_hints(model)
    return {
        name: hints[name]
        for name in model.api_fields()
        if isinstance(hints[name], type) and issubclass(hints[name], Model)
    }


def assert_matches(model: type[Model], shape: dict[str, Any]) -> None:
    """The fields `model` parses are the shape's properties, each one required (the client
    reads every one of them); a nested model matches its own shape."""
    parsed, documented = set(model.api_fields()), set(shape["properties"])
    assert parsed == documented, (
        f"{model.__name__}: the API answers {sorted(documented - parsed)} that the client "
        f"does not parse, and not {sorted(parsed - documented)} that it does"
    )
    optional = parsed - set(shape.get("required", []))
    assert not optional, f"{model.__name__}: the client requires {sorted(optional)}"
    for name, inner in nested_models(model).items():
        assert_matches(inner, component(shape["properties"][name]))


@pytest.mark.parametrize(
    ("method", "path", "status", "model", "paged"),
    READS,
    ids=[f"{method} {path}" for method, path, *_ in READS],
)
def test_the_client_parses_what_each_route_answers(
    method: str, path: str, status: str, model: type[Model], paged: bool
) -> None:
    shape = answer(method, path, status)
    if paged:
        assert set(shape["properties"]) == {"items", "next_cursor"}
        assert set(shape["required"]) == {"items", "next_cursor"}
        shape = component(shape["properties"]["items"]["items"])
    assert_matches(model, shape)


def test_every_model_of_the_client_is_checked() -> None:
    assert {model for *_, model, _ in READS} == set(MODELS) | set(EVENT_MODELS)


class Recorder(httpx.BaseTransport):
    """Answers every request with its route's documented example, and keeps the bodies
    of the POSTs."""

    def __init__(self) -> None:
        self.sent: dict[str, dict[str, Any] | None] = {}
        self.read: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for value, parameter in PATH_IDS.items():
            path = path.replace(value, parameter)
        if request.method == "POST":
            self.sent[path] = json.loads(request.content) if request.content else None
        else:
            self.read.append(path)
        responses = operation(request.method, path)["responses"]
        status = next(code for code in responses if code.startswith("2"))
        if "content" not in responses[status]:  # 204
            return httpx.Response(int(status), request=request)
        shape = component(responses[status]["content"]["application/json"]["schema"])
        # The schema's examples leave out their null fields (FastAPI drops them).
        example = {name: shape["examples"][0].get(name) for name in shape["properties"]}
        return httpx.Response(int(status), json=example, request=request)


def test_the_client_sends_only_what_each_route_takes() -> None:
    """And parses each route's documented example."""
    transport = Recorder()
    items = [BatchItem(WALLET, "1.00", reference="r")]
    with Paysys("http://paysys.test", "key", transport=transport, retries=0) as client:
        client.create_account("Alice")
        client.replenish(WALLET, "2.00", reference="r")
        client.transfer(WALLET, OTHER_WALLET, "3.00", reference="r")
        client.create_batch(items)
        client.validate_batch(items)
        client.withdraw(WALLET, "4.00", currency="USD", reference="r")
        client.hold(WALLET, "5.00", to_wallet_id=OTHER_WALLET, expires_in=60, reference="r")
        client.capture(HOLD, "1.00", reference="r")
        client.void(HOLD)
        client.reverse(OPERATION, "1.00", reference="r")
        hold = client.get_hold(HOLD)
        created = client.create_webhook_endpoint(
            "https://example.com/hooks", ["operation.succeeded"], description="d"
        )
        delivery = client.redeliver(ENDPOINT, EVENT)
        enabled = client.enable_webhook_endpoint(ENDPOINT)
        endpoint = client.get_webhook_endpoint(ENDPOINT)
        client.delete_webhook_endpoint(ENDPOINT)
    assert len(transport.sent) == 13
    assert transport.read == [
        "/v1/holds/{hold_id}",
        "/v1/webhook-endpoints/{endpoint_id}",
        "/v1/webhook-endpoints/{endpoint_id}",
    ]
    assert hold.id == HOLD and hold.captured_amount is None
    assert created.secret.startswith("whsec_") and created.id == ENDPOINT
    assert endpoint == enabled and endpoint.event_types == created.event_types
    assert (delivery.endpoint_id, delivery.event_id) == (ENDPOINT, EVENT)
    for path, body in transport.sent.items():
        if body is None:
            assert "requestBody" not in operation("POST", path), f"POST {path} takes a body"
            continue
        taken = request_body("POST", path)["properties"]
        assert set(body) <= set(taken), (
            f"POST {path} does not take {sorted(set(body) - set(taken))}"
        )
        if "items" in body:
            item = component(taken["items"]["items"])["properties"]
            for sent in body["items"]:
                assert set(sent) <= set(item), (
                    f"a batch item does not take {sorted(set(sent) - set(item))}"
                )
