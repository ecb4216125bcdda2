from __future__ import annotations

import re

from tests.helpers import Api, assert_problem, new_key

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_account_returns_account_with_empty_usd_wallet(api: Api) -> None:
    response = api.post("/v1/accounts", {"name": "Alice", "currency": "USD"})
    assert response.status_code == 201
    account = response.json()
    assert response.headers["location"] == f"/v1/accounts/{account['id']}"
    assert account["name"] == "Alice"
    assert RFC3339_UTC.match(account["created_at"])
    wallet = account["wallet"]
    assert wallet["account_id"] == account["id"]
    assert wallet["currency"] == "USD"
    assert wallet["balance"] == "0.00"
    assert RFC3339_UTC.match(wallet["updated_at"])
    assert "Idempotent-Replayed" not in response.headers


def test_currency_defaults_to_usd(api: Api) -> None:
    account = api.post("/v1/accounts", {"name": "No currency"}).json()
    assert account["wallet"]["currency"] == "USD"


def test_get_account(api: Api) -> None:
    created = api.create_account("Carol")
    response = api.get(f"/v1/accounts/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_unknown_account_is_404(api: Api) -> None:
    response = api.get("/v1/accounts/01a21281-e4e0-78de-ae4e-9f66091ef99e")
    assert_problem(response, 404, "not_found")


def test_unsupported_currency(api: Api) -> None:
    response = api.post("/v1/accounts", {"name": "Euro", "currency": "EUR"})
    assert_problem(response, 422, "unsupported_currency")


def test_name_rules(api: Api) -> None:
    for bad in ["", "   ", "x" * 201, None, 5]:
        response = api.post("/v1/accounts", {"name": bad})
        body = assert_problem(response, 422, "validation_error")
        assert body["errors"][0]["loc"] == ["body", "name"]
    assert api.post("/v1/accounts", {"name": "x" * 200}).status_code == 201
    assert_problem(api.post("/v1/accounts", {}), 422, "validation_error")


def test_list_accounts_newest_first_and_paginated(api: Api) -> None:
    created = [api.create_account(f"Account {i}")["id"] for i in range(7)]
    first = api.get("/v1/accounts", params={"limit": 3}).json()
    assert [a["id"] for a in first["items"]] == created[::-1][:3]
    seen = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/accounts", params=params).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created[::-1]
    default = api.get("/v1/accounts").json()
    assert len(default["items"]) == 7 and default["next_cursor"] is None


def test_account_listing_sees_accounts_created_while_paging_only_once(api: Api) -> None:
    before = [api.create_account(f"Before {i}")["id"] for i in range(5)]
    page = api.get("/v1/accounts", params={"limit": 2}).json()
    seen = [a["id"] for a in page["items"]]
    api.create_account("Arrived while paging")
    cursor = page["next_cursor"]
    while cursor:
        page = api.get("/v1/accounts", params={"limit": 2, "cursor": cursor}).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
    assert seen == before[::-1]


def test_idempotent_account_creation(api: Api) -> None:
    key = new_key()
    first = api.post("/v1/accounts", {"name": "Once"}, key=key)
    again = api.post("/v1/accounts", {"currency": "USD", "name": "Once"}, key=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    names = [a["name"] for a in api.get("/v1/accounts").json()["items"]]
    assert names.count("Once") == 1
    other = api.post("/v1/accounts", {"name": "Twice"}, key=key)
    assert_problem(other, 422, "idempotency_key_reused")
