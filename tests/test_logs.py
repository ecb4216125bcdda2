"""Structured logs: one JSON object per line, and an operation followed by its request id
from the API that accepted it to the worker that applied it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.conftest import Stack
from tests.helpers import Api, new_key


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_an_operation_is_followed_from_request_to_worker(stack: Stack, api: Api) -> None:
    wallet = api.create_wallet()
    request_id = f"req-{uuid.uuid4().hex}"
    response = api.post(
        f"/v1/wallets/{wallet}/replenishments",
        {"amount": "3.00"},
        key=new_key(),
        headers={"X-Request-Id": request_id},
    )
    assert response.headers["x-request-id"] == request_id
    operation = response.json()["id"]
    assert api.wait(operation)["status"] == "succeeded"

    deadline = time.monotonic() + 10
    while True:
        api_lines = json_lines(stack.api.log())
        worker_lines = json_lines(stack.worker.log())
        accepted = [x for x in api_lines if x.get("operation_id") == operation]
        applied = [x for x in worker_lines if x.get("operation_id") == operation]
        if (accepted and applied) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [accepted_line] = accepted
    [applied_line] = applied
    assert accepted_line["message"] == "operation accepted"
    assert accepted_line["request_id"] == request_id
    assert applied_line["message"] == "operation succeeded"
    assert applied_line["request_id"] == request_id
    assert applied_line["tenant_id"] == accepted_line["tenant_id"]
    assert applied_line["process"] == "worker" and accepted_line["process"] == "api"
    # And the request itself, once, with its outcome.
    [access] = [
        x for x in api_lines if x.get("request_id") == request_id and x["logger"] == "paysys.access"
    ]
    assert access["status"] == 202
    assert access["message"] == "POST /v1/wallets/{wallet_id}/replenishments 202"


def test_every_service_logs_json_lines(stack: Stack) -> None:
    for service in stack.services:
        lines = json_lines(service.log())
        assert lines, f"{service.name} wrote no JSON line"
        assert all({"time", "level", "process", "logger", "message"} <= set(x) for x in lines)
