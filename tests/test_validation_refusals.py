"""A refused request moves no money, and does not use up its Idempotency-Key."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.helpers import Api, assert_problem, new_key
from tests.hostile import (
    DEST,
    SOURCE,
    UNKNOWN_WALLET,
    Conn,
    accounts_of,
    ledger_state,
    make_target,
    operations_of,
    raw_http,
    raw_replenishment,
    send,
    tenant_of,
)
from tests.hostile_tables import (
    CONTROL_KEYS,
    REPLENISHMENT_CASES,
    REPLENISHMENT_PATH,
    TRANSFER_CASES,
    TRANSFER_PATH,
)


def test_hostile_table_moves_no_money(api: Api, db: Conn) -> None:
    """The whole hostile table against one funded wallet: nothing may move."""
    target = make_target(api, db, funded="100.00")
    before = ledger_state(api, db, target)
    assert before["api_balances"] == [Decimal("100.00"), Decimal("0.00")]
    assert before["operations_of_tenant"] == 1

    wrong = []
    for default_path, cases in (
        (REPLENISHMENT_PATH, REPLENISHMENT_CASES),
        (TRANSFER_PATH, TRANSFER_CASES),
    ):
        for case in cases:
            path, body, key = case.request(target, default_path)
            response = send(api, "POST", path, body=body, key=key, content_type=case.content_type)
            if not (
                400 <= response.status_code < 500
                and response.headers.get("content-type", "").startswith("application/problem+json")
            ):
                wrong.append((default_path, case.name, response.status_code, response.text[:200]))
    for raw_key in CONTROL_KEYS.values():
        raw_http(api.base_url, raw_replenishment(api, target, raw_key))

    after = ledger_state(api, db, target)
    assert after == before
    assert not wrong, f"{len(wrong)} hostile requests were not answered with a 4xx problem: {wrong}"


@dataclass(frozen=True)
class Refusal:
    name: str
    path: str
    body: str
    status: int
    code: str


CORRECT_REPLENISHMENT = '{"amount": "12.34", "reference": "corrected"}'
CORRECT_TRANSFER = (
    f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{DEST}", "amount": "12.34", '
    '"reference": "corrected"}'
)

REFUSALS = [
    Refusal(
        "replenishment-zero-amount", REPLENISHMENT_PATH, '{"amount": "0"}', 422, "validation_error"
    ),
    Refusal(
        "replenishment-three-decimals",
        REPLENISHMENT_PATH,
        '{"amount": "12.345", "reference": "corrected"}',
        422,
        "validation_error",
    ),
    Refusal(
        "replenishment-eur",
        REPLENISHMENT_PATH,
        '{"amount": "12.34", "currency": "EUR", "reference": "corrected"}',
        422,
        "unsupported_currency",
    ),
    Refusal(
        "replenishment-unknown-wallet",
        f"/v1/wallets/{UNKNOWN_WALLET}/replenishments",
        CORRECT_REPLENISHMENT,
        404,
        "not_found",
    ),
    Refusal(
        "replenishment-malformed-json", REPLENISHMENT_PATH, '{"amount": ', 422, "validation_error"
    ),
    Refusal(
        "replenishment-unknown-field",
        REPLENISHMENT_PATH,
        '{"amount": "12.34", "reference": "corrected", "memo": "x"}',
        422,
        "validation_error",
    ),
    Refusal(
        "transfer-same-wallet",
        TRANSFER_PATH,
        f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{SOURCE}", "amount": "12.34"}}',
        422,
        "same_wallet",
    ),
    Refusal(
        "transfer-unknown-destination",
        TRANSFER_PATH,
        f'{{"from_wallet_id": "{SOURCE}", "to_wallet_id": "{UNKNOWN_WALLET}", "amount": "12.34"}}',
        404,
        "not_found",
    ),
    Refusal(
        "transfer-negative-amount",
        TRANSFER_PATH,
        CORRECT_TRANSFER.replace('"12.34"', '"-12.34"'),
        422,
        "validation_error",
    ),
    Refusal(
        "transfer-eur",
        TRANSFER_PATH,
        CORRECT_TRANSFER[:-1] + ', "currency": "EUR"}',
        422,
        "unsupported_currency",
    ),
]


@pytest.mark.parametrize("refusal", [pytest.param(r, id=r.name) for r in REFUSALS])
def test_refused_request_does_not_use_up_its_key(api: Api, db: Conn, refusal: Refusal) -> None:
    target = make_target(api, db, funded="50.00")
    key = new_key().encode()
    refused = send(
        api, "POST", target.fill(refusal.path), body=target.fill(refusal.body).encode(), key=key
    )
    assert_problem(refused, refusal.status, refusal.code)
    assert operations_of(db, target.tenant_id) == 1  # the funding only

    is_transfer = refusal.path == TRANSFER_PATH
    path = TRANSFER_PATH if is_transfer else target.fill(REPLENISHMENT_PATH)
    body = target.fill(CORRECT_TRANSFER if is_transfer else CORRECT_REPLENISHMENT).encode()
    created = send(api, "POST", path, body=body, key=key)
    assert created.status_code == 202, created.text
    assert "Idempotent-Replayed" not in created.headers
    operation = created.json()
    assert operation["amount"] == "12.34" and operation["reference"] == "corrected"
    assert created.headers["Location"] == f"/v1/operations/{operation['id']}"
    assert api.wait(operation["id"])["status"] == "succeeded"

    # The key is now taken by the corrected request: the same request replays it.
    replayed = send(api, "POST", path, body=body, key=key)
    assert replayed.status_code == 202, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == operation["id"]
    assert operations_of(db, target.tenant_id) == 2
    if is_transfer:
        assert api.balance(target.source) == Decimal("37.66")
        assert api.balance(target.dest) == Decimal("12.34")
    else:
        assert api.balance(target.source) == Decimal("62.34")


@pytest.mark.parametrize(
    ("refused_body", "code"),
    [
        pytest.param('{"name": ""}', "validation_error", id="empty-name"),
        pytest.param('{"name": "Alice", "currency": "EUR"}', "unsupported_currency", id="eur"),
        pytest.param('{"name": "Alice", "extra": 1}', "validation_error", id="unknown-field"),
    ],
)
def test_refused_account_creation_does_not_use_up_its_key(
    api: Api, db: Conn, refused_body: str, code: str
) -> None:
    tenant_id = tenant_of(db, api)
    key = new_key().encode()
    assert_problem(
        send(api, "POST", "/v1/accounts", body=refused_body.encode(), key=key), 422, code
    )
    assert accounts_of(db, tenant_id) == 0

    created = send(api, "POST", "/v1/accounts", body=b'{"name": "Alice"}', key=key)
    assert created.status_code == 201, created.text
    assert "Idempotent-Replayed" not in created.headers
    replayed = send(api, "POST", "/v1/accounts", body=b'{"name": "Alice"}', key=key)
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == created.json()["id"]
    assert accounts_of(db, tenant_id) == 1
