"""Hostile and edge-case account creations (see tests/hostile.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api
from tests.hostile import (
    Case,
    Conn,
    accounts_of,
    assert_refused,
    case_params,
    idempotency_records_of,
    send,
    tenant_of,
)
from tests.hostile_tables import BAD_TEXT, body_shape_cases

BAD_ACCOUNTS: list[Case] = [
    Case("name-missing", "{}"),
    Case("name-empty", '{"name": ""}'),
    Case("name-blank", '{"name": "   "}'),
    Case("name-whitespace-controls", '{"name": "\\t\\n"}'),
    Case("name-201-chars", '{"name": "' + "n" * 201 + '"}'),
    Case("name-10k-chars", '{"name": "' + "n" * 10_000 + '"}'),
    Case("name-number", '{"name": 123}'),
    Case("name-true", '{"name": true}'),
    Case("name-null", '{"name": null}'),
    Case("name-list", '{"name": ["Alice"]}'),
    Case("name-object", '{"name": {"first": "Alice"}}'),
    *[Case(f"name-{name}", f'{{"name": {literal}}}') for name, literal in BAD_TEXT],
    Case("currency-eur", '{"name": "Alice", "currency": "EUR"}', code="unsupported_currency"),
    Case("currency-number", '{"name": "Alice", "currency": 840}'),
    Case("currency-list", '{"name": "Alice", "currency": ["USD"]}'),
    Case("unknown-field", '{"name": "Alice", "balance": "1000.00"}'),
    Case("unknown-field-wallet", '{"name": "Alice", "wallet": {"balance": "1000.00"}}'),
    *body_shape_cases('{"name": "Alice"}'),
    # Optional here, but an empty one is a client's mistake, refused as on money-moving
    # requests rather than taken as absent (a retry would then create a second account).
    Case("key-empty", '{"name": "Alice"}', 400, "idempotency_key_required", key=b""),
    Case("key-256-chars", '{"name": "Alice"}', key=b"k" * 256),
    Case("key-non-ascii", '{"name": "Alice"}', key="cl\u00e9".encode()),
    Case("key-control-tab", '{"name": "Alice"}', key=b"a\tb"),
]


@pytest.mark.parametrize("case", case_params(BAD_ACCOUNTS))
def test_bad_account_is_refused(api: Api, db: Conn, case: Case) -> None:
    tenant_id = tenant_of(db, api)
    body = case.body.encode() if isinstance(case.body, str) else case.body
    key = None if case.key == b"<fresh>" else case.key
    response = send(api, "POST", "/v1/accounts", body=body, key=key, content_type=case.content_type)
    assert_refused(response, case)
    assert accounts_of(db, tenant_id) == 0
    assert idempotency_records_of(db, tenant_id) == 0
    listing = api.get("/v1/accounts")
    assert listing.status_code == 200 and listing.json()["items"] == []


@pytest.mark.parametrize(
    ("body", "name"),
    [
        pytest.param({"name": "A"}, "A", id="one-char-name-currency-omitted"),
        pytest.param({"name": "n" * 200, "currency": "USD"}, "n" * 200, id="200-char-name"),
        pytest.param({"name": "Zo\u00eb \U0001f680"}, "Zo\u00eb \U0001f680", id="unicode-name"),
        pytest.param({"name": "  padded  "}, "  padded  ", id="padded-name"),
    ],
)
def test_good_account_is_accepted(api: Api, body: dict[str, Any], name: str) -> None:
    response = api.post("/v1/accounts", body)
    assert response.status_code == 201, response.text
    account = response.json()
    assert account["name"] == name
    assert account["wallet"]["currency"] == "USD"
    assert account["wallet"]["balance"] == "0.00"
    fetched = api.get(f"/v1/accounts/{account['id']}")
    assert fetched.status_code == 200 and fetched.json()["name"] == name
