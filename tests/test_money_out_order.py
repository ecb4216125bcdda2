"""Guarantee 5 with money going out (API.md, "Operations" and "Withdrawals, holds and
reversals"): withdrawals, holds, captures and voids take their place in the queue of the
wallet they debit and are applied one at a time in the order their 202 was returned,
with the wallet's replenishments and transfers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from shared.money import format_cents
from tests.helpers import Api


def test_replenishment_then_withdrawal_of_all_of_it_back_to_back_both_succeed(api: Api) -> None:
    for _ in range(5):
        wallet = api.create_wallet()
        top_up = api.replenish(wallet, "10.00")
        withdrawal = api.withdraw(wallet, "10.00")
        assert api.wait(top_up.json()["id"])["status"] == "succeeded"
        assert api.wait(withdrawal.json()["id"])["status"] == "succeeded"
        assert api.funds(wallet) == ("0.00", "0.00", "0.00")


def test_replenishment_hold_and_capture_back_to_back_all_succeed(api: Api) -> None:
    source = api.create_wallet()
    destination = api.create_wallet()
    accepted = [api.replenish(source, "10.00")]
    accepted.append(api.place_hold(source, "10.00", destination))
    accepted.append(api.capture(accepted[1].json()["id"], amount="6.00"))
    accepted.append(api.withdraw(source, "4.00"))
    for response in accepted:
        assert api.applied(response)["status"] == "succeeded", response.json()
    assert api.funds(source) == ("0.00", "0.00", "0.00")
    assert api.funds(destination) == ("6.00", "0.00", "6.00")


def test_hold_and_transfer_racing_for_the_same_money_first_accepted_wins(api: Api) -> None:
    # 10.00 available, 7.00 held and 5.00 sent: only one fits, the one accepted first.
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    hold = api.place_hold(source, "7.00", destination)
    transfer = api.transfer(source, destination, "5.00")
    assert api.applied(hold)["status"] == "succeeded"
    assert api.applied(transfer)["error"]["code"] == "insufficient_funds"
    assert api.funds(source) == ("10.00", "7.00", "3.00")

    source = api.funded_wallet("10.00")
    transfer = api.transfer(source, destination, "5.00")
    hold = api.place_hold(source, "7.00", destination)
    assert api.applied(transfer)["status"] == "succeeded"
    assert api.applied(hold)["error"]["code"] == "insufficient_funds"
    assert api.hold(hold.json()["id"])["status"] == "failed"
    assert api.funds(source) == ("5.00", "0.00", "5.00")
    assert api.funds(destination) == ("5.00", "0.00", "5.00")


@dataclass
class Model:
    """The source wallet and its holds as API.md says they end up, the plan applied in
    acceptance order."""

    balance: int = 0
    destination: int = 0
    holds: dict[str, tuple[str, int, int | None]] = field(default_factory=dict)

    @property
    def held(self) -> int:
        return sum(amount for status, amount, _ in self.holds.values() if status == "held")

    @property
    def available(self) -> int:
        return self.balance - self.held


def test_withdrawals_holds_and_transfers_are_applied_in_acceptance_order(api: Api) -> None:
    source = api.create_wallet("source")
    destination = api.create_wallet("destination")
    rng = random.Random(20240611)
    model = Model()
    expected: list[tuple[str, str | None]] = []  # operation id, its failure code or None
    kinds = ["replenish", "withdraw", "transfer", "hold", "capture", "void"]
    for _ in range(80):
        kind = rng.choices(kinds, weights=[4, 3, 3, 4, 2, 1])[0]
        if kind in ("capture", "void") and not model.holds:
            kind = "hold"
        cents = rng.randint(100, 2000)
        outcome: str | None = None
        if kind == "replenish":
            response = api.replenish(source, format_cents(cents + 500))
            model.balance += cents + 500
        elif kind in ("withdraw", "transfer"):
            if kind == "withdraw":
                response = api.withdraw(source, format_cents(cents))
            else:
                response = api.transfer(source, destination, format_cents(cents))
            if model.available >= cents:
                model.balance -= cents
                model.destination += cents if kind == "transfer" else 0
            else:
                outcome = "insufficient_funds"
        elif kind == "hold":
            response = api.place_hold(source, format_cents(cents), destination)
            fits = model.available >= cents
            model.holds[response.json()["id"]] = ("held" if fits else "failed", cents, None)
            outcome = None if fits else "insufficient_funds"
        else:
            active = [h for h, (status, _, _) in model.holds.items() if status == "held"]
            hold_id = rng.choice(active if active and rng.random() < 0.8 else list(model.holds))
            status, amount, _ = model.holds[hold_id]
            if kind == "void":
                response = api.void(hold_id)
                final: tuple[str, int, int | None] = ("voided", amount, None)
            else:
                part = rng.choice([None, rng.randint(1, amount)])
                body: dict[str, Any] = {} if part is None else {"amount": format_cents(part)}
                response = api.capture(hold_id, **body)
                captured = amount if part is None else part
                final = ("captured", amount, captured)
            if status == "held":
                model.holds[hold_id] = final
                if final[2] is not None:
                    model.balance -= final[2]
                    model.destination += final[2]
            else:
                outcome = "hold_not_active"
        assert response.status_code == 202, (kind, response.text)
        expected.append((response.json()["id"], outcome))

    # The plan exercises every outcome, or the test proves little.
    codes = [code for _, code in expected]
    assert codes.count("insufficient_funds") >= 3 and codes.count("hold_not_active") >= 3
    assert codes.count(None) >= 30
    assert {status for status, _, _ in model.holds.values()} == {
        "held",
        "failed",
        "captured",
        "voided",
    }

    for operation_id, code in expected:
        operation = api.wait(operation_id)
        if code is None:
            assert operation["status"] == "succeeded", operation
        else:
            assert operation["status"] == "failed", operation
            assert operation["error"]["code"] == code, operation
    assert api.funds(source) == (
        format_cents(model.balance),
        format_cents(model.held),
        format_cents(model.available),
    )
    assert api.funds(destination)[0] == format_cents(model.destination)
    for hold_id, (status, amount, part) in model.holds.items():
        hold = api.hold(hold_id)
        assert hold["status"] == status, hold
        assert hold["amount"] == format_cents(amount)
        assert hold["captured_amount"] == (None if part is None else format_cents(part))
