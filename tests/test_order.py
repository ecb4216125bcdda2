from __future__ import annotations

from decimal import Decimal

from tests.helpers import Api


def test_replenishment_then_transfer_back_to_back_both_succeed(api: Api) -> None:
    for _ in range(5):
        source = api.create_wallet()
        destination = api.create_wallet()
        top_up = api.replenish(source, "10.00")
        transfer = api.transfer(source, destination, "10.00")
        assert api.wait(top_up.json()["id"])["status"] == "succeeded"
        assert api.wait(transfer.json()["id"])["status"] == "succeeded"
        assert api.balance(destination) == Decimal("10.00")


def test_fifty_transfers_are_applied_in_acceptance_order(api: Api) -> None:
    # Amounts 1.01, 1.02, ... 1.50 make each posting identifiable. The source can cover
    # all of them, so each transfer must succeed, and its balance_after tells when it ran.
    amounts = [Decimal("1.00") + Decimal(i) / 100 for i in range(1, 51)]
    total = sum(amounts, Decimal(0))
    source = api.funded_wallet(str(total + Decimal("1.00")))
    destinations = [api.create_wallet(f"D{i}") for i in range(5)]
    accepted = [
        api.transfer(source, destinations[i % 5], str(amount)).json()["id"]
        for i, amount in enumerate(amounts)
    ]
    for operation_id in accepted:
        assert api.wait(operation_id)["status"] == "succeeded"

    postings = api.postings(source)[::-1]  # oldest first
    debits = [p for p in postings if p["type"] == "transfer"]
    assert [p["operation_id"] for p in debits] == accepted
    balance = total + Decimal("1.00")
    for posting, amount in zip(debits, amounts, strict=True):
        balance -= amount
        assert Decimal(posting["amount"]) == -amount
        assert Decimal(posting["balance_after"]) == balance
    assert api.balance(source) == Decimal("1.00")


def test_order_decides_which_transfer_fails(api: Api) -> None:
    # 10.00 available; 6.00 then 5.00: the first accepted wins, the second fails.
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    first = api.transfer(source, destination, "6.00").json()["id"]
    second = api.transfer(source, destination, "5.00").json()["id"]
    third = api.transfer(source, destination, "4.00").json()["id"]
    assert api.wait(first)["status"] == "succeeded"
    assert api.wait(second)["error"]["code"] == "insufficient_funds"
    assert api.wait(third)["status"] == "succeeded"
    assert api.balance(source) == Decimal("0.00")
