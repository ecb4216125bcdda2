"""Schemathesis against the app's own OpenAPI schema, in-process through ASGI with a valid
API key: every endpoint, generated valid and invalid requests, and every response checked
against the schema (no server error, documented status, content type, headers, body)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from api.app import create_app

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
KEY = re.compile(r"[\x20-\x7e]{1,255}")


@pytest.fixture(scope="module")
def auth(stack: Any) -> dict[str, str]:
    from tests.conftest import make_api

    api = make_api(stack)
    # Something for the generated requests to find, besides the 404s of random ids.
    wallet = api.create_wallet("schemathesis")
    api.replenish(wallet, "100.00")
    api.close()
    return {"Authorization": f"Bearer {api.api_key}"}


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_schema(case: Any, auth: dict[str, str]) -> None:
    # The key is always sent: a case generated as invalid for lacking it is made valid
    # here, so its being accepted says nothing about the API.
    sent_without_key = "Authorization" not in (case.headers or {})
    headers = {**dict(case.headers or {}), **auth}
    # Generated keys repeat ("0", "00", ...) across different bodies, which the API rightly
    # refuses as reuse; a well-formed key is made unique, a malformed one kept as generated.
    key = headers.get("Idempotency-Key")
    if key is not None and KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
    # A valid long poll answers after its `wait` when nothing happens, up to 30 s: keep
    # it short here (long polls have tests of their own).
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 1:
        case.query["wait"] = 1
    response = case.call(headers=headers)
    excluded = []
    if _names_unknown_wallets_only(response) or _refuses_webhook_url_or_count(response):
        # A batch naming wallets the tenant does not have is refused whole with 422 naming
        # the items (the contract says so); like a 404, no schema can know which ids exist.
        excluded.append(positive_data_acceptance)
    if sent_without_key and response.status_code < 300:
        excluded.append(negative_data_rejection)
    case.validate_response(response, headers=headers, excluded_checks=excluded)


def _names_unknown_wallets_only(response: Any) -> bool:
    if response.status_code != 422:
        return False
    errors = response.json().get("errors") or []
    return bool(errors) and all(
        e["loc"][-1] == "wallet_id" and e["msg"].endswith("not found") for e in errors
    )


def _refuses_webhook_url_or_count(response: Any) -> bool:
    """A webhook URL refused for its host (not a valid name, port or address, or not a
    public one where private receivers are not allowed), or a tenant's 21st endpoint: the
    schema gives the URL's shape, but no schema can say where a name resolves, nor count."""
    if response.status_code != 422:
        return False
    body = response.json()
    if body.get("code") == "webhook_url_not_allowed":
        return True
    errors = body.get("errors") or []
    return (
        body.get("code") == "validation_error"
        and bool(errors)
        and all(e["loc"] in (["body", "url"], ["body"]) for e in errors)
        and (errors[0]["msg"].startswith("The URL ") or "webhook endpoints" in body["detail"])
    )
