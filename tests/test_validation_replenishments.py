"""Hostile and edge-case replenishment requests (see tests/hostile.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, new_key
from tests.hostile import (
    Case,
    Conn,
    assert_post_refused,
    case_params,
    idempotency_records_of,
    make_target,
    number_body,
    operations_of,
    raw_http,
    raw_replenishment,
    send,
)
from tests.hostile_tables import (
    CONTROL_KEYS,
    GOOD_AMOUNTS,
    GOOD_OPTIONALS,
    REPLENISHMENT_CASES,
    REPLENISHMENT_PATH,
)


@pytest.mark.parametrize("case", case_params(REPLENISHMENT_CASES))
def test_bad_replenishment_is_refused(api: Api, db: Conn, case: Case) -> None:
    assert_post_refused(api, db, case, REPLENISHMENT_PATH)


@pytest.mark.parametrize("key", [pytest.param(v, id=k) for k, v in CONTROL_KEYS.items()])
def test_idempotency_key_with_control_character_is_refused(api: Api, db: Conn, key: bytes) -> None:
    """A control character no HTTP client library would put in a header, sent raw. Such a
    header is not valid HTTP (RFC 9110: only HTAB is allowed among control characters), so
    it may be refused by the HTTP layer before the application; it must be refused."""
    target = make_target(api, db)
    status, _, content = raw_http(api.base_url, raw_replenishment(api, target, key))
    assert 400 <= status < 500, (status, content[:300])
    assert operations_of(db, target.tenant_id) == 0
    assert idempotency_records_of(db, target.tenant_id) == 0


@pytest.mark.parametrize(("literal", "expected"), GOOD_AMOUNTS)
def test_good_replenishment_amount_is_accepted(
    api: Api, db: Conn, literal: str, expected: str
) -> None:
    target = make_target(api, db)
    body = number_body("amount", literal).encode()
    response = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=body,
        key=new_key().encode(),
    )
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["amount"] == expected
    assert operation["currency"] == "USD"
    assert operation["wallet_id"] == target.source
    assert operation["reference"] is None
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.wallet(target.source)["balance"] == expected


@pytest.mark.parametrize(("extra", "reference"), GOOD_OPTIONALS)
def test_optional_fields_are_accepted_on_replenishment(
    api: Api, db: Conn, extra: dict[str, Any], reference: str | None
) -> None:
    target = make_target(api, db)
    response = api.post(
        f"/v1/wallets/{target.source}/replenishments", {"amount": "3.00", **extra}, key=new_key()
    )
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["currency"] == "USD"
    assert operation["reference"] == reference
    assert api.operation(operation["id"])["reference"] == reference
    assert api.wait(operation["id"])["status"] == "succeeded"


def test_longest_idempotency_key_is_accepted(api: Api, db: Conn) -> None:
    target = make_target(api, db)
    printable = "".join(chr(c) for c in range(0x20, 0x7F))  # every printable ASCII character
    key = ("k" + printable * 3)[:254] + "k"  # no space at either end: HTTP would strip it
    assert len(key) == 255
    response = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=b'{"amount": "1.00"}',
        key=key.encode(),
    )
    assert response.status_code == 202, response.text
    replayed = send(
        api,
        "POST",
        f"/v1/wallets/{target.source}/replenishments",
        body=b'{"amount": "1.00"}',
        key=key.encode(),
    )
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == response.json()["id"]
