"""A refused batch names every bad item in one answer; currencies are matched without
Unicode case folding; an empty Idempotency-Key is a missing one (API.md, "Replenishment
batches", "Conventions", "Idempotency")."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg2.extensions
import pytest

from tests.conftest import query
from tests.helpers import Api, assert_problem, new_key

Conn = psycopg2.extensions.connection

BATCHES = "/v1/replenishment-batches"
VALIDATIONS = "/v1/replenishment-batch-validations"
LONG_S = "\u017f"  # LATIN SMALL LETTER LONG S: "u\u017fd".upper() == "USD"


def post_items(api: Api, path: str, items: list[Any]) -> Any:
    key = new_key() if path == BATCHES else None
    return api.post(path, {"items": items}, key=key)


def tenant_operations(db: Conn, wallet: str) -> int:
    return int(
        query(
            db,
            "SELECT count(*) FROM operation WHERE tenant_id = "
            "(SELECT tenant_id FROM wallet WHERE id = %s)",
            wallet,
        )[0][0]
    )


def locs(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body["errors"]]


@pytest.mark.parametrize("path", [BATCHES, VALIDATIONS])
def test_malformed_items_and_unknown_wallets_are_named_together(
    api: Api, other_api: Api, db: Conn, path: str
) -> None:
    wallet = api.create_wallet()
    theirs = other_api.create_wallet()
    unknown = str(uuid.uuid4())
    items: list[Any] = [{"wallet_id": wallet, "amount": "1.00"} for _ in range(12)]
    items[1] = {"wallet_id": wallet, "amount": "0"}  # malformed amount
    items[3] = {"wallet_id": unknown, "amount": "1.00"}  # unknown wallet
    items[4] = {"wallet_id": "not-a-uuid", "amount": "1.00"}  # malformed wallet id
    items[6] = {"wallet_id": theirs, "amount": "1.00"}  # another tenant's wallet
    items[7] = {"wallet_id": unknown, "amount": "1.001"}  # both: amount and wallet
    items[9] = "not an object"
    items[10] = {"wallet_id": wallet, "amount": "1.00", "color": "red"}  # unknown field
    body = assert_problem(post_items(api, path, items), 422, "validation_error")
    assert locs(body) == [
        ["body", "items", 1, "amount"],
        ["body", "items", 3, "wallet_id"],
        ["body", "items", 4, "wallet_id"],
        ["body", "items", 6, "wallet_id"],
        ["body", "items", 7, "amount"],
        ["body", "items", 7, "wallet_id"],
        ["body", "items", 9],
        ["body", "items", 10, "color"],
    ]
    by_loc = {tuple(e["loc"]): e["msg"] for e in body["errors"]}
    assert by_loc[("body", "items", 3, "wallet_id")] == f"Wallet {unknown} not found"
    assert by_loc[("body", "items", 6, "wallet_id")] == f"Wallet {theirs} not found"
    assert "7 item(s)" in body["detail"]
    assert tenant_operations(db, wallet) == 0
    assert api.balance(wallet) == Decimal("0.00")


@pytest.mark.parametrize("path", [BATCHES, VALIDATIONS])
def test_only_unsupported_currencies_is_unsupported_currency_naming_each(
    api: Api, db: Conn, path: str
) -> None:
    wallet = api.create_wallet()
    items: list[Any] = [{"wallet_id": wallet, "amount": "1.00"} for _ in range(5)]
    items[1] = {"wallet_id": wallet, "amount": "1.00", "currency": "EUR"}
    items[3] = {"wallet_id": wallet, "amount": "1.00", "currency": f"u{LONG_S}d"}
    body = assert_problem(post_items(api, path, items), 422, "unsupported_currency")
    assert locs(body) == [["body", "items", 1, "currency"], ["body", "items", 3, "currency"]]
    assert tenant_operations(db, wallet) == 0


def test_currencies_among_other_faults_are_named_in_a_validation_error(api: Api, db: Conn) -> None:
    wallet = api.create_wallet()
    items: list[Any] = [
        {"wallet_id": wallet, "amount": "1.00", "currency": "EUR"},
        {"wallet_id": str(uuid.uuid4()), "amount": "1.00"},
        {"wallet_id": wallet, "amount": "-1", "currency": "GBP"},  # malformed and foreign
        {"wallet_id": wallet, "amount": "1.00", "currency": 840},  # not even a string
    ]
    body = assert_problem(post_items(api, BATCHES, items), 422, "validation_error")
    assert locs(body) == [
        ["body", "items", 0, "currency"],
        ["body", "items", 1, "wallet_id"],
        ["body", "items", 2, "amount"],
        ["body", "items", 2, "currency"],
        ["body", "items", 3, "currency"],
    ]
    assert tenant_operations(db, wallet) == 0


def test_a_refused_batch_leaves_its_key_unused(api: Api) -> None:
    wallet = api.create_wallet()
    key = new_key()
    bad = [{"wallet_id": wallet, "amount": "x"}, {"wallet_id": str(uuid.uuid4()), "amount": "1"}]
    assert_problem(api.post(BATCHES, {"items": bad}, key=key), 422, "validation_error")
    good = [{"wallet_id": wallet, "amount": "2.00", "currency": "usd"}]
    accepted = api.post(BATCHES, {"items": good}, key=key)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    operations = api.pages(f"{BATCHES}/{accepted.json()['id']}/operations")
    assert api.wait(operations[0]["id"])["status"] == "succeeded"
    assert api.balance(wallet) == Decimal("2.00")


@pytest.mark.parametrize(
    "currency",
    [f"u{LONG_S}d", f"U{LONG_S}D", "\uff55\uff53\uff44"],  # long s; fullwidth letters
    ids=["long-s", "long-s-upper", "fullwidth"],
)
def test_currency_look_alikes_are_unsupported_on_single_operations(
    api: Api, db: Conn, currency: str
) -> None:
    wallet = api.funded_wallet("10.00")
    other = api.create_wallet()
    refusals = [
        api.replenish(wallet, "1.00", currency=currency),
        api.transfer(wallet, other, "1.00", currency=currency),
        api.post("/v1/accounts", {"name": "Look-alike", "currency": currency}),
    ]
    for response in refusals:
        assert_problem(response, 422, "unsupported_currency")
    assert api.balance(wallet) == Decimal("10.00")
    assert api.balance(other) == Decimal("0.00")
    assert tenant_operations(db, wallet) == 1  # the funding top-up only


@pytest.mark.parametrize("currency", ["USD", "usd", "uSd"])
def test_ascii_currency_codes_keep_any_letter_case(api: Api, currency: str) -> None:
    wallet = api.create_wallet()
    response = api.replenish(wallet, "1.00", currency=currency)
    assert response.status_code == 202, response.text
    assert response.json()["currency"] == "USD"
    batch = api.post(
        BATCHES, {"items": [{"wallet_id": wallet, "amount": "1", "currency": currency}]}, new_key()
    )
    assert batch.status_code == 202, batch.text


def empty_key_requests(api: Api) -> list[tuple[str, dict[str, Any]]]:
    wallet = api.create_wallet()
    other = api.create_wallet()
    return [
        (f"/v1/wallets/{wallet}/replenishments", {"amount": "1.00"}),
        ("/v1/transfers", {"from_wallet_id": wallet, "to_wallet_id": other, "amount": "1.00"}),
        (BATCHES, {"items": [{"wallet_id": wallet, "amount": "1.00"}]}),
        ("/v1/accounts", {"name": "Empty key"}),
    ]


def test_an_empty_idempotency_key_is_a_missing_one(api: Api, db: Conn) -> None:
    before = api.pages("/v1/accounts")
    for path, body in empty_key_requests(api):
        problem = assert_problem(
            api.post(path, body, headers={"Idempotency-Key": ""}), 400, "idempotency_key_required"
        )
        assert "empty" in problem["detail"]
    after = api.pages("/v1/accounts")
    assert len(after) == len(before) + 2  # the two wallets made above, not "Empty key"
    assert all(account["name"] != "Empty key" for account in after)
    wallet = after[0]["wallet"]["id"]
    assert tenant_operations(db, wallet) == 0
