"""Reversals (API.md, "Withdrawals, holds and reversals"): money given back.

A transfer's or a capture's reversal debits its destination and credits its source; a
replenishment's debits the wallet; a withdrawal's credits the wallet. Partial reversals
add up to at most the original's amount (`reversal_exceeds_amount` at application), each
one is checked against what the debited wallet has available (`insufficient_funds`), and
only a succeeded transfer, replenishment, withdrawal or capture can be reversed
(`422 not_reversible`).
"""

from __future__ import annotations

import uuid

from tests.helpers import Api, assert_problem, new_key, wallet_queue_held
from tests.hostile import send
from tests.hostile_tables import BAD_AMOUNTS


def test_transfer_reversal_gives_the_money_back(api: Api) -> None:
    source = api.funded_wallet("30.00")
    destination = api.create_wallet()
    transfer = api.applied(api.transfer(source, destination, "10.00"))
    response = api.reverse(transfer["id"], reference="refund 3")
    assert response.status_code == 202, response.text
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["type"] == "reversal"
    assert operation["reverses_operation_id"] == transfer["id"]
    # As the money moves: out of the destination, back into the source.
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (destination, source)
    assert operation["wallet_id"] is None and operation["hold_id"] is None
    assert operation["reference"] == "refund 3" and operation["currency"] == "USD"

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert final["amount"] == "10.00"  # all that is left, by default
    assert final["transaction_id"] is not None
    assert final["reversed_amount"] == "0.00"
    assert api.funds(source) == ("30.00", "0.00", "30.00")
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    debit, credit = api.postings(destination)[0], api.postings(source)[0]
    assert debit["type"] == credit["type"] == "reversal"
    assert (debit["amount"], debit["balance_after"]) == ("-10.00", "0.00")
    assert (credit["amount"], credit["balance_after"]) == ("10.00", "30.00")
    assert debit["transaction_id"] == credit["transaction_id"] == final["transaction_id"]
    assert debit["operation_id"] == credit["operation_id"] == operation["id"]

    original = api.operation(transfer["id"])
    assert original["reversed_amount"] == "10.00"
    assert {k: v for k, v in original.items() if k != "reversed_amount"} == {
        k: v for k, v in transfer.items() if k != "reversed_amount"
    }

    # Nothing is left to reverse.
    over = api.applied(api.reverse(transfer["id"], amount="0.01"))
    assert over["status"] == "failed"
    assert over["error"]["code"] == "reversal_exceeds_amount" and over["error"]["message"]
    assert over["transaction_id"] is None
    assert api.operation(transfer["id"])["reversed_amount"] == "10.00"
    assert api.funds(source) == ("30.00", "0.00", "30.00")


def test_partial_reversals_add_up_to_the_amount(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    transfer = api.applied(api.transfer(source, destination, "10.00"))["id"]
    assert api.applied(api.reverse(transfer, amount="3.00"))["status"] == "succeeded"
    assert api.operation(transfer)["reversed_amount"] == "3.00"
    assert api.applied(api.reverse(transfer, amount=2.5))["status"] == "succeeded"
    assert api.operation(transfer)["reversed_amount"] == "5.50"
    rest = api.applied(api.reverse(transfer))
    assert (rest["status"], rest["amount"]) == ("succeeded", "4.50")
    assert api.operation(transfer)["reversed_amount"] == "10.00"
    assert api.funds(source) == ("10.00", "0.00", "10.00")
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    reversals = [p["amount"] for p in api.postings(destination) if p["type"] == "reversal"]
    assert reversals == ["-4.50", "-2.50", "-3.00"]


def test_reversals_beyond_the_amount_fail_at_application(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    transfer = api.applied(api.transfer(source, destination, "10.00"))["id"]
    # Back to back: each fits when accepted, the two together do not.
    first = api.reverse(transfer, amount="6.00")
    second = api.reverse(transfer, amount="5.00")
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert api.wait(first.json()["id"])["status"] == "succeeded"
    failed = api.wait(second.json()["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "reversal_exceeds_amount"
    assert failed["transaction_id"] is None
    assert api.operation(transfer)["reversed_amount"] == "6.00"
    assert api.funds(destination) == ("4.00", "0.00", "4.00")

    assert api.applied(api.reverse(transfer, amount="4.00"))["status"] == "succeeded"
    assert api.operation(transfer)["reversed_amount"] == "10.00"
    assert api.funds(source) == ("10.00", "0.00", "10.00")
    assert api.funds(destination) == ("0.00", "0.00", "0.00")


def test_reversal_the_debited_wallet_cannot_cover_fails(api: Api) -> None:
    source = api.funded_wallet("20.00")
    destination = api.create_wallet()
    elsewhere = api.create_wallet()
    transfer = api.applied(api.transfer(source, destination, "10.00"))["id"]
    assert api.applied(api.transfer(destination, elsewhere, "8.00"))["status"] == "succeeded"

    failed = api.applied(api.reverse(transfer))
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "insufficient_funds"
    assert failed["transaction_id"] is None
    assert api.operation(transfer)["reversed_amount"] == "0.00"

    # Checked against what is available, not the balance.
    api.active_hold(destination, "1.50")
    assert api.funds(destination) == ("2.00", "1.50", "0.50")
    short = api.applied(api.reverse(transfer, amount="0.51"))
    assert short["error"]["code"] == "insufficient_funds"
    assert api.applied(api.reverse(transfer, amount="0.50"))["status"] == "succeeded"
    assert api.operation(transfer)["reversed_amount"] == "0.50"
    assert api.funds(destination) == ("1.50", "1.50", "0.00")
    assert api.funds(source) == ("10.50", "0.00", "10.50")


def test_replenishment_reversal_debits_the_wallet(api: Api) -> None:
    wallet = api.create_wallet()
    replenishment = api.applied(api.replenish(wallet, "25.00"))["id"]
    response = api.reverse(replenishment, amount="5.00")
    assert response.status_code == 202, response.text
    reversal = api.wait(response.json()["id"])
    assert reversal["status"] == "succeeded"
    assert reversal["reverses_operation_id"] == replenishment
    # Into the funding side, which is never named.
    assert (reversal["from_wallet_id"], reversal["to_wallet_id"]) == (wallet, None)
    assert reversal["wallet_id"] is None
    assert api.funds(wallet) == ("20.00", "0.00", "20.00")
    posting = api.postings(wallet)[0]
    assert (posting["type"], posting["amount"], posting["balance_after"]) == (
        "reversal",
        "-5.00",
        "20.00",
    )
    assert posting["transaction_id"] == reversal["transaction_id"]
    assert api.operation(replenishment)["reversed_amount"] == "5.00"

    assert api.applied(api.withdraw(wallet, "18.00"))["status"] == "succeeded"
    rest = api.applied(api.reverse(replenishment))
    assert (rest["amount"], rest["error"]["code"]) == ("20.00", "insufficient_funds")
    assert api.applied(api.reverse(replenishment, amount="2.00"))["status"] == "succeeded"
    assert api.operation(replenishment)["reversed_amount"] == "7.00"
    assert api.funds(wallet) == ("0.00", "0.00", "0.00")


def test_withdrawal_reversal_credits_the_wallet_back(api: Api) -> None:
    wallet = api.funded_wallet("25.00")
    withdrawal = api.applied(api.withdraw(wallet, "10.00"))["id"]
    assert api.funds(wallet) == ("15.00", "0.00", "15.00")
    response = api.reverse(withdrawal)
    assert response.status_code == 202, response.text
    reversal = api.wait(response.json()["id"])
    assert reversal["status"] == "succeeded"
    assert reversal["amount"] == "10.00"
    assert reversal["reverses_operation_id"] == withdrawal
    assert (reversal["from_wallet_id"], reversal["to_wallet_id"]) == (None, wallet)
    assert api.funds(wallet) == ("25.00", "0.00", "25.00")
    posting = api.postings(wallet)[0]
    assert (posting["type"], posting["amount"], posting["balance_after"]) == (
        "reversal",
        "10.00",
        "25.00",
    )
    assert api.operation(withdrawal)["reversed_amount"] == "10.00"
    over = api.applied(api.reverse(withdrawal, amount="0.01"))
    assert over["error"]["code"] == "reversal_exceeds_amount"
    assert api.funds(wallet) == ("25.00", "0.00", "25.00")


def test_capture_reversal_gives_the_money_back_to_the_holds_source(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    capture = api.applied(api.capture(hold_id, amount="15.00"))["id"]
    reversal = api.applied(api.reverse(capture, amount="5.00"))
    assert reversal["status"] == "succeeded"
    assert reversal["reverses_operation_id"] == capture
    assert (reversal["from_wallet_id"], reversal["to_wallet_id"]) == (destination, source)
    assert api.funds(source) == ("40.00", "0.00", "40.00")
    assert api.funds(destination) == ("10.00", "0.00", "10.00")
    assert api.operation(capture)["reversed_amount"] == "5.00"
    assert api.postings(destination)[0]["amount"] == "-5.00"
    assert api.postings(source)[0]["type"] == "reversal"

    # A capture without destination paid out: its reversal comes back from the funding side.
    payout_hold = api.active_hold(source, "10.00")
    payout = api.applied(api.capture(payout_hold))["id"]
    assert api.funds(source) == ("30.00", "0.00", "30.00")
    back = api.applied(api.reverse(payout))
    assert back["status"] == "succeeded" and back["amount"] == "10.00"
    assert (back["from_wallet_id"], back["to_wallet_id"]) == (None, source)
    assert api.funds(source) == ("40.00", "0.00", "40.00")
    assert api.operation(payout)["reversed_amount"] == "10.00"


def test_only_succeeded_money_movements_are_reversible(api: Api, database_url: str) -> None:
    source = api.funded_wallet("20.00")
    destination = api.create_wallet()
    hold = api.active_hold(source, "5.00", destination)
    voided_hold = api.active_hold(source, "1.00")
    void = api.applied(api.void(voided_hold))["id"]
    transfer = api.applied(api.transfer(source, destination, "2.00"))["id"]
    reversal = api.applied(api.reverse(transfer, amount="1.00"))["id"]
    failed = [
        api.applied(api.transfer(source, destination, "1000.00")),
        api.applied(api.withdraw(destination, "1000.00")),
        api.applied(api.capture(voided_hold)),
        api.applied(api.place_hold(source, "1000.00")),
    ]
    assert {op["status"] for op in failed} == {"failed"}
    funds = (api.funds(source), api.funds(destination))

    key = new_key()
    refused = [hold, void, reversal, *(op["id"] for op in failed)]
    for operation in refused:
        assert_problem(api.reverse(operation, key=key), 422, "not_reversible")
        assert_problem(api.reverse(operation, key=key, amount="0.01"), 422, "not_reversible")
    assert (api.funds(source), api.funds(destination)) == funds
    assert api.operation(reversal)["reversed_amount"] == "0.00"
    with wallet_queue_held(database_url, source):
        pending = api.transfer(source, destination, "1.00").json()["id"]
        assert_problem(api.reverse(pending, key=key), 422, "not_reversible")
    assert api.wait(pending)["status"] == "succeeded"

    # None of the refusals used up the key.
    accepted = api.reverse(transfer, key=key)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    assert api.wait(accepted.json()["id"])["amount"] == "1.00"
    assert api.operation(transfer)["reversed_amount"] == "2.00"


def test_reversal_of_an_unknown_or_foreign_operation_is_404(api: Api, other_api: Api) -> None:
    mine = api.funded_wallet("10.00")
    theirs = other_api.create_wallet()
    replenishment = other_api.applied(other_api.replenish(theirs, "10.00"))["id"]
    withdrawal = other_api.applied(other_api.withdraw(theirs, "1.00"))["id"]
    for operation in (str(uuid.uuid4()), replenishment, withdrawal):
        assert_problem(api.reverse(operation), 404, "not_found")
        assert_problem(api.reverse(operation, amount="1.00"), 404, "not_found")
    assert_problem(api.reverse("not-a-uuid"), 422, "validation_error")
    assert other_api.funds(theirs) == ("9.00", "0.00", "9.00")
    assert other_api.operation(replenishment)["reversed_amount"] == "0.00"
    assert other_api.operation(withdrawal)["reversed_amount"] == "0.00"
    assert api.funds(mine) == ("10.00", "0.00", "10.00")


def test_bad_reversal_is_refused(api: Api) -> None:
    wallet = api.create_wallet()
    replenishment = api.applied(api.replenish(wallet, "10.00"))["id"]
    path = f"/v1/operations/{replenishment}/reversals"
    key = new_key()
    for name, literal in BAD_AMOUNTS:
        response = send(
            api, "POST", path, body=f'{{"amount": {literal}}}'.encode(), key=key.encode()
        )
        assert response.status_code == 422, (name, response.text)
        assert_problem(response, 422, "validation_error")
    assert_problem(
        api.reverse(replenishment, key=key, reference="r" * 256), 422, "validation_error"
    )
    assert_problem(api.post(path, {}), 400, "idempotency_key_required")
    assert api.funds(wallet) == ("10.00", "0.00", "10.00")
    assert api.operation(replenishment)["reversed_amount"] == "0.00"
    accepted = api.reverse(replenishment, key=key, amount="1.00")
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers


def test_reversal_replay_returns_the_same_operation(api: Api) -> None:
    wallet = api.create_wallet()
    replenishment = api.applied(api.replenish(wallet, "10.00"))["id"]
    key = new_key()
    first = api.reverse(replenishment, key=key, amount="4.00", reference="refund")
    assert first.status_code == 202, first.text
    api.wait(first.json()["id"])
    again = api.reverse(replenishment, key=key, reference="refund", amount=4)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"
    assert_problem(
        api.reverse(replenishment, key=key, amount="3.00"), 422, "idempotency_key_reused"
    )
    assert api.funds(wallet) == ("6.00", "0.00", "6.00")
    assert api.operation(replenishment)["reversed_amount"] == "4.00"
