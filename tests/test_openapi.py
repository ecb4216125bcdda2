"""/docs is usable: every operation summarised, with examples and its error answers."""

from __future__ import annotations

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
