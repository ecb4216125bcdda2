"""/docs is usable: every operation summarised, with examples and its error answers."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import Any

from api.app import create_app

SCHEMA: dict[str, Any] = create_app().openapi()
COMPONENTS = SCHEMA["components"]["schemas"]


def component(ref: dict[str, Any]) -> dict[str, Any]:
    return dict(COMPONENTS[ref["$ref"].rsplit("/", 1)[1]])


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in SCHEMA["paths"].items() for m, op in item.items()]


def test_every_operation_has_a_summary() -> None:
    assert all(op.get("summary") for _, _, op in operations())


def test_every_v1_operation_lists_its_problems() -> None:
    for method, path, op in operations():
        if not path.startswith("/v1"):
            continue
        for status in ("401", "503"):
            content = op["responses"][status]["content"]["application/problem+json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in op["responses"], (method, path)
        assert op["security"] == [{"bearer": []}]
    assert component({"$ref": "#/components/schemas/Problem"})["examples"]


def test_request_and_response_bodies_have_examples() -> None:
    for method, path, op in operations():
        if "requestBody" in op:
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert component(body).get("examples"), f"{method} {path} request"
        for status, answer in op["responses"].items():
            if not status.startswith("2") or path in ("/healthz", "/readyz", "/metrics"):
                continue
            if status == "204":  # no content
                assert "content" not in answer, f"{method} {path} 204 has a body"
                continue
            schema = answer["content"]["application/json"]["schema"]
            model = component(schema)
            if "items" in model.get("properties", {}):  # a page: its items' model
                model = component(model["properties"]["items"]["items"])
            assert model.get("examples"), f"{method} {path} {status} response"


def test_money_moving_posts_require_their_key() -> None:
    for method, path, op in operations():
        # Accounts take an optional key; validations and webhook endpoints move no money.
        if method != "POST" or path == "/v1/accounts" or "validations" in path:
            continue
        if path.startswith("/v1/webhook-endpoints"):
            assert "Idempotency-Key" not in {p["name"] for p in op.get("parameters", [])}
        else:
            [key] = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
            assert key["required"] is True, path


# The operationIds are what generated clients name their methods: a change here is a
# change of every such client's API.
OPERATION_IDS = {
    ("GET", "/healthz"): "healthz",
    ("GET", "/readyz"): "readyz",
    ("GET", "/metrics"): "metrics",
    ("POST", "/v1/accounts"): "createAccount",
    ("GET", "/v1/accounts"): "listAccounts",
    ("GET", "/v1/accounts/{account_id}"): "getAccount",
    ("GET", "/v1/wallets/{wallet_id}"): "getWallet",
    ("GET", "/v1/wallets/{wallet_id}/postings"): "listWalletPostings",
    ("POST", "/v1/wallets/{wallet_id}/replenishments"): "createReplenishment",
    ("POST", "/v1/wallets/{wallet_id}/withdrawals"): "createWithdrawal",
    ("POST", "/v1/transfers"): "createTransfer",
    ("GET", "/v1/operations/{operation_id}"): "getOperation",
    ("POST", "/v1/operations/{operation_id}/reversals"): "createReversal",
    ("POST", "/v1/holds"): "createHold",
    ("GET", "/v1/holds/{hold_id}"): "getHold",
    ("POST", "/v1/holds/{hold_id}/capture"): "captureHold",
    ("POST", "/v1/holds/{hold_id}/void"): "voidHold",
    ("POST", "/v1/replenishment-batches"): "createReplenishmentBatch",
    ("POST", "/v1/replenishment-batch-validations"): "validateReplenishmentBatch",
    ("GET", "/v1/replenishment-batches/{batch_id}"): "getReplenishmentBatch",
    (
        "GET",
        "/v1/replenishment-batches/{batch_id}/operations",
    ): "listReplenishmentBatchOperations",
    ("GET", "/v1/events"): "listEvents",
    ("GET", "/v1/events/{event_id}"): "getEvent",
    ("POST", "/v1/webhook-endpoints"): "createWebhookEndpoint",
    ("GET", "/v1/webhook-endpoints"): "listWebhookEndpoints",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "getWebhookEndpoint",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "deleteWebhookEndpoint",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/enable"): "enableWebhookEndpoint",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "listWebhookDeliveries",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/redeliveries"): "redeliverWebhookEvent",
}


def test_every_operation_has_a_unique_camel_case_operation_id() -> None:
    ids = [op.get("operationId", "") for _, _, op in operations()]
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_operation_ids_stay_what_clients_were_generated_with() -> None:
    """A route added gets its operationId listed here; one renamed breaks clients."""
    assert {(m, p): op["operationId"] for m, p, op in operations()} == OPERATION_IDS


def test_accepted_answers_say_so_with_a_pending_example() -> None:
    accepted = [(m, p, op) for m, p, op in operations() if "202" in op["responses"]]
    assert len(accepted) >= 9
    for method, path, op in accepted:
        answer = op["responses"]["202"]
        assert answer["description"] == "Accepted: recorded, to be applied", (method, path)
        example = answer["content"]["application/json"]["example"]
        assert example["status"] == "pending", (method, path)
        # Every field of the model, and nothing else.
        model = component(answer["content"]["application/json"]["schema"])
        assert list(example) == list(model["properties"]), (method, path)
        if "transaction_id" in example:
            assert example["transaction_id"] is None and example["completed_at"] is None


def test_the_version_is_the_package_version() -> None:
    assert SCHEMA["info"]["version"] == version("paysys")
