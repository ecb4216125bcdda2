"""The OpenAPI document at /openapi.json: what /docs shows and what client generators read.

FastAPI builds it from the routes; this adds what it cannot know:

* `operationId`s made from the route functions' names (`create_transfer` →
  `createTransfer`): stable, readable names for the methods of generated clients. They are
  part of the contract: `tests/test_openapi.py` lists them all, so that renaming a route
  function cannot rename a client's method unnoticed.
* every `202` described for what it is (the work is recorded, not yet done), with an
  example of the pending resource the client gets back;
* the problem+json model, the bearer scheme, and the version of the installed package.
"""

from __future__ import annotations

import copy
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from shared.resources.schemas import Problem

ACCEPTED = "Accepted: recorded, to be applied"

WALLET = "0193a0c4-2b1e-7c3a-9f10-5d2e8b7a6c01"
OTHER_WALLET = "0193a0c4-2b1e-7d44-8e21-6f3f9c8b7d12"
HOLD = "0193a0c7-0b00-7c1d-8e2f-a3b4c5d6e7f8"
ORIGINAL = "0193a0c5-1f00-7a2b-b3c4-d5e6f7a8b9c0"
FROM_TO = {"wallet_id": None, "from_wallet_id": WALLET, "to_wallet_id": OTHER_WALLET}

# What each accepting route's pending answer looks like, over its model's example.
PENDING: dict[str, dict[str, Any]] = {
    "createReplenishment": {
        "type": "replenishment",
        "wallet_id": WALLET,
        "from_wallet_id": None,
        "to_wallet_id": None,
        "amount": "25.00",
        "reference": "top-up 42",
    },
    "createWithdrawal": {
        "type": "withdrawal",
        "wallet_id": WALLET,
        "from_wallet_id": None,
        "to_wallet_id": None,
        "reference": "payout 7",
    },
    "createTransfer": {"type": "transfer", **FROM_TO},
    "createHold": {
        "id": HOLD,
        "type": "hold",
        **FROM_TO,
        "amount": "15.00",
        "reference": "order 1234",
    },
    "captureHold": {
        "type": "capture",
        **FROM_TO,
        "hold_id": HOLD,
        "amount": "12.00",
        "reference": "delivered",
    },
    "voidHold": {"type": "void", **FROM_TO, "hold_id": HOLD, "amount": "15.00", "reference": None},
    "createReversal": {
        "id": "0193a0c9-2c00-7d1e-9f20-a1b2c3d4e5f6",
        "type": "reversal",
        "wallet_id": None,
        "from_wallet_id": OTHER_WALLET,
        "to_wallet_id": WALLET,
        "reverses_operation_id": ORIGINAL,
        "amount": "4.00",
        "reference": "refund",
    },
    "createReplenishmentBatch": {"pending": 10000, "succeeded": 0, "failed": 0},
}
# An operation just accepted has no outcome yet.
NOT_YET = {"transaction_id": None, "error": None, "completed_at": None, "reversed_amount": "0.00"}


def operation_id(route: APIRoute) -> str:
    """`create_transfer` → `createTransfer` (FastAPI's `generate_unique_id_function`)."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def build(app: FastAPI) -> dict[str, Any]:
    """The document, built once (`app.openapi`)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=version("paysys"), description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.setdefault("schemas", {}).update(problem.pop("$defs", {}))
    components["schemas"]["Problem"] = problem
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: sk_..."}
    }
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if path.startswith("/v1"):
                operation["security"] = [{"bearer": []}]
            if "202" in operation["responses"]:
                _describe_accepted(operation, components["schemas"])
    app.openapi_schema = schema
    return schema


def _describe_accepted(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    answer = operation["responses"]["202"]
    answer["description"] = ACCEPTED
    content = answer["content"]["application/json"]
    model = schemas[content["schema"]["$ref"].rsplit("/", 1)[1]]
    # Every field, in the model's order (the model's own example leaves out its nulls).
    given = copy.deepcopy(model["examples"][0])
    example = {name: given.get(name) for name in model["properties"]}
    if "transaction_id" in model["properties"]:  # an operation
        example.update(NOT_YET)
    example.update(PENDING.get(operation["operationId"], {}))
    example["status"] = "pending"
    content["example"] = example
