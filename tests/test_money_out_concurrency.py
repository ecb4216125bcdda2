"""Money going out under concurrent requests (API.md, guarantees 1-5 and "Withdrawals,
holds and reversals"): one capture or void per hold however many race for it, reversals
that never add up to more than the original, an available balance that never goes below
zero; and the tenant's books balancing after each."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from devtools.processes import run_paysys
from tests.helpers import Api, new_key

MONEY_MOVING = {"replenishment", "transfer", "withdrawal", "capture", "reversal"}


def fire(api: Api, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send every request at once, each with its own Idempotency-Key."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {api.api_key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=len(requests)),
        ) as client:
            return await asyncio.gather(
                *(
                    client.post(path, json=body, headers={"Idempotency-Key": new_key()})
                    for path, body in requests
                )
            )

    responses = asyncio.run(run())
    for response in responses:
        assert response.status_code == 202, response.text
    return responses


def outcomes(api: Api, responses: list[httpx.Response]) -> list[dict[str, Any]]:
    return [api.wait(response.json()["id"]) for response in responses]


def assert_books_balance(api: Api) -> None:
    """Each of the tenant's wallets is the sum of its postings, with neither its balance nor
    its available balance below zero; and all of them together hold what the succeeded
    operations brought in from outside paysys minus what they took out (the funding side
    is the `null` end of an operation)."""
    total = Decimal(0)
    operation_ids: set[str] = set()
    for account in api.pages("/v1/accounts"):
        wallet_id = account["wallet"]["id"]
        balance, held, available = (Decimal(v) for v in api.funds(wallet_id))
        assert balance >= 0 and held >= 0 and available >= 0, wallet_id
        assert available == balance - held, wallet_id
        postings = api.postings(wallet_id)
        assert sum((Decimal(p["amount"]) for p in postings), Decimal(0)) == balance
        operation_ids |= {p["operation_id"] for p in postings}
        total += balance
    external = Decimal(0)
    for operation_id in operation_ids:
        operation = api.operation(operation_id)
        assert operation["status"] == "succeeded" and operation["type"] in MONEY_MOVING
        amount = Decimal(operation["amount"])
        if operation["type"] == "replenishment":
            external += amount
        elif operation["type"] == "withdrawal":
            external -= amount
        elif operation["from_wallet_id"] is None:
            external += amount
        elif operation["to_wallet_id"] is None:
            external -= amount
    assert total == external


def test_concurrent_captures_and_voids_of_one_hold_one_wins(api: Api) -> None:
    source = api.funded_wallet("100.00")
    destination = api.create_wallet()
    for round_ in range(3):
        hold_id = api.active_hold(source, "10.00", destination)
        requests: list[tuple[str, dict[str, Any]]] = []
        for i in range(12):
            if i % 3 == 0:
                requests.append((f"/v1/holds/{hold_id}/void", {}))
            else:
                body = {} if i % 3 == 1 else {"amount": f"{round_ + 1}.00"}
                requests.append((f"/v1/holds/{hold_id}/capture", body))
        done = outcomes(api, fire(api, requests))
        assert len({o["id"] for o in done}) == 12
        winners = [o for o in done if o["status"] == "succeeded"]
        assert len(winners) == 1, done
        losers = [o for o in done if o["status"] == "failed"]
        assert len(losers) == 11
        assert {o["error"]["code"] for o in losers} == {"hold_not_active"}
        assert {o["transaction_id"] for o in losers} == {None}
        hold = api.hold(hold_id)
        if winners[0]["type"] == "capture":
            assert hold["status"] == "captured"
            assert hold["captured_amount"] == winners[0]["amount"]
        else:
            assert (hold["status"], hold["captured_amount"]) == ("voided", None)
        assert api.funds(source)[1] == "0.00"
    moved = sum(
        (Decimal(p["amount"]) for p in api.postings(destination) if p["type"] == "capture"),
        Decimal(0),
    )
    assert api.balance(source) == Decimal("100.00") - moved
    assert api.balance(destination) == moved
    assert_books_balance(api)


def _reversible(api: Api, kind: str) -> str:
    """A succeeded operation of `kind` that moved 10.00."""
    wallet = api.funded_wallet("10.00")
    if kind == "replenishment":
        return str(api.postings(wallet)[0]["operation_id"])
    if kind == "withdrawal":
        return str(api.applied(api.withdraw(wallet, "10.00"))["id"])
    destination = api.create_wallet()
    if kind == "transfer":
        return str(api.applied(api.transfer(wallet, destination, "10.00"))["id"])
    hold_id = api.active_hold(wallet, "10.00", destination)
    return str(api.applied(api.capture(hold_id))["id"])


@pytest.mark.parametrize("kind", ["transfer", "replenishment", "withdrawal", "capture"])
def test_concurrent_partial_reversals_never_over_reverse(api: Api, kind: str) -> None:
    original = _reversible(api, kind)
    # 20 x 0.75 = 15.00 asked of 10.00: 13 fit (9.75), the 14th would make 10.50.
    requests = [(f"/v1/operations/{original}/reversals", {"amount": "0.75"})] * 20
    done = outcomes(api, fire(api, requests))
    succeeded = [o for o in done if o["status"] == "succeeded"]
    failed = [o for o in done if o["status"] == "failed"]
    assert len(succeeded) == 13, done
    assert {o["error"]["code"] for o in failed} == {"reversal_exceeds_amount"}
    total = sum((Decimal(o["amount"]) for o in succeeded), Decimal(0))
    assert total == Decimal("9.75")
    assert api.operation(original)["reversed_amount"] == "9.75"
    assert {o["reverses_operation_id"] for o in done} == {original}
    assert_books_balance(api)


def test_concurrent_money_out_of_one_wallet_never_overdraws_available(api: Api) -> None:
    source = api.funded_wallet("100.00")
    destination = api.create_wallet()
    requests: list[tuple[str, dict[str, Any]]] = []
    for i in range(60):
        if i % 3 == 0:
            requests.append((f"/v1/wallets/{source}/withdrawals", {"amount": "3.00"}))
        elif i % 3 == 1:
            hold = {"from_wallet_id": source, "to_wallet_id": destination, "amount": "3.00"}
            requests.append(("/v1/holds", hold))
        else:
            transfer = {"from_wallet_id": source, "to_wallet_id": destination, "amount": "3.00"}
            requests.append(("/v1/transfers", transfer))
    done = outcomes(api, fire(api, requests))
    succeeded = [o for o in done if o["status"] == "succeeded"]
    failed = [o for o in done if o["status"] == "failed"]
    # Each takes 3.00 of the 100.00 available: 33 fit, whatever the order.
    assert len(succeeded) == 33
    assert {o["error"]["code"] for o in failed} == {"insufficient_funds"}
    by_type = {
        t: sum(o["type"] == t for o in succeeded) for t in ("withdrawal", "hold", "transfer")
    }
    held = 3 * by_type["hold"]
    balance = 100 - 3 * (by_type["withdrawal"] + by_type["transfer"])
    assert api.funds(source) == (f"{balance}.00", f"{held}.00", "1.00")
    assert api.balance(destination) == 3 * by_type["transfer"]
    holds = [o["id"] for o in succeeded if o["type"] == "hold"]
    assert {api.hold(h)["status"] for h in holds} <= {"held"}

    # Then every hold captured or voided at once: all released.
    ends: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/holds/{h}/capture" if i % 2 else f"/v1/holds/{h}/void", {})
        for i, h in enumerate(holds)
    ]
    if ends:
        assert {o["status"] for o in outcomes(api, fire(api, ends))} == {"succeeded"}
    captured = 3 * (len(holds) // 2)
    assert api.funds(source) == (
        f"{balance - captured}.00",
        "0.00",
        f"{balance - captured}.00",
    )
    assert api.balance(destination) == 3 * by_type["transfer"] + captured
    assert_books_balance(api)

    audit = run_paysys("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
