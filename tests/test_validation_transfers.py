"""Hostile and edge-case transfer requests (see tests/hostile.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import Api, new_key
from tests.hostile import (
    Case,
    Conn,
    assert_post_refused,
    case_params,
    make_target,
    number_body,
    send,
)
from tests.hostile_tables import GOOD_AMOUNTS, GOOD_OPTIONALS, TRANSFER_CASES, TRANSFER_PATH


@pytest.mark.parametrize("case", case_params(TRANSFER_CASES))
def test_bad_transfer_is_refused(api: Api, db: Conn, case: Case) -> None:
    assert_post_refused(api, db, case, TRANSFER_PATH)


@pytest.mark.parametrize(("literal", "expected"), GOOD_AMOUNTS)
def test_good_transfer_amount_is_accepted(api: Api, db: Conn, literal: str, expected: str) -> None:
    target = make_target(api, db, funded="1000000000.00")
    body = number_body("amount", literal, from_wallet_id=target.source, to_wallet_id=target.dest)
    response = send(api, "POST", TRANSFER_PATH, body=body.encode(), key=new_key().encode())
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["amount"] == expected
    assert operation["currency"] == "USD"
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (target.source, target.dest)
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.wallet(target.dest)["balance"] == expected
    assert api.balance(target.source) == Decimal("1000000000.00") - Decimal(expected)


@pytest.mark.parametrize(("extra", "reference"), GOOD_OPTIONALS)
def test_optional_fields_are_accepted_on_transfer(
    api: Api, db: Conn, extra: dict[str, Any], reference: str | None
) -> None:
    target = make_target(api, db, funded="5.00")
    response = api.transfer(target.source, target.dest, "3.00", **extra)
    assert response.status_code == 202, response.text
    operation = response.json()
    assert operation["currency"] == "USD"
    assert operation["reference"] == reference
    assert api.wait(operation["id"])["status"] == "succeeded"
    assert api.balance(target.dest) == Decimal("3.00")
