from __future__ import annotations

from decimal import Decimal

from tests.helpers import Api


def test_replenish_then_transfer(api: Api) -> None:
    a = api.create_wallet("Alice")
    b = api.create_wallet("Bob")
    top_up = api.replenish(a, "25.00")
    transfer = api.transfer(a, b, "5.00")
    assert top_up.status_code == 202 and transfer.status_code == 202
    assert api.wait(top_up.json()["id"])["status"] == "succeeded"
    assert api.wait(transfer.json()["id"])["status"] == "succeeded"
    assert api.balance(a) == Decimal("20.00")
    assert api.balance(b) == Decimal("5.00")
