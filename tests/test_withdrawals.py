"""Withdrawals (API.md, "Withdrawals, holds and reversals"): money leaves paysys, debiting
the wallet and crediting the funding side, checked against the wallet's available
balance (its balance minus its active holds)."""

from __future__ import annotations

from tests.helpers import Api, assert_problem, new_key
from tests.hostile import UNKNOWN_WALLET, send
from tests.hostile_tables import BAD_AMOUNTS


def test_withdrawal_is_accepted_then_debits_the_wallet(api: Api) -> None:
    wallet = api.funded_wallet("30.00")
    response = api.withdraw(wallet, "12.34", reference="payout 7")
    assert response.status_code == 202, response.text
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["type"] == "withdrawal"
    assert operation["status"] in {"pending", "succeeded"}
    assert (operation["amount"], operation["currency"]) == ("12.34", "USD")
    assert operation["wallet_id"] == wallet
    # The funding side is never named.
    assert operation["from_wallet_id"] is None and operation["to_wallet_id"] is None
    assert operation["reference"] == "payout 7"
    assert operation["hold_id"] is None and operation["reverses_operation_id"] is None
    assert operation["reversed_amount"] == "0.00"
    assert operation["batch_id"] is None and operation["error"] is None

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert final["transaction_id"] is not None and final["completed_at"] is not None
    assert final["wallet_id"] == wallet and final["from_wallet_id"] is None
    assert api.funds(wallet) == ("17.66", "0.00", "17.66")
    withdrawal, replenishment = api.postings(wallet)
    assert replenishment["type"] == "replenishment"
    assert withdrawal["type"] == "withdrawal"
    assert withdrawal["operation_id"] == operation["id"]
    assert withdrawal["transaction_id"] == final["transaction_id"]
    assert (withdrawal["amount"], withdrawal["balance_after"]) == ("-12.34", "17.66")

    # Everything available may leave, down to zero.
    assert api.applied(api.withdraw(wallet, "17.66"))["status"] == "succeeded"
    assert api.funds(wallet) == ("0.00", "0.00", "0.00")


def test_withdrawal_is_checked_against_the_available_balance(api: Api) -> None:
    wallet = api.funded_wallet("10.00")
    api.active_hold(wallet, "4.00")
    assert api.funds(wallet) == ("10.00", "4.00", "6.00")
    postings_before = api.postings(wallet)

    # The balance covers 6.01, the available balance does not.
    failed = api.applied(api.withdraw(wallet, "6.01"))
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "insufficient_funds" and failed["error"]["message"]
    assert failed["transaction_id"] is None and failed["completed_at"] is not None
    assert api.funds(wallet) == ("10.00", "4.00", "6.00")
    assert api.postings(wallet) == postings_before

    assert api.applied(api.withdraw(wallet, "6.00"))["status"] == "succeeded"
    assert api.funds(wallet) == ("4.00", "4.00", "0.00")
    # Not a cent of the held money may leave.
    assert api.applied(api.withdraw(wallet, "0.01"))["error"]["code"] == "insufficient_funds"
    assert api.funds(wallet) == ("4.00", "4.00", "0.00")

    empty = api.create_wallet()
    assert api.applied(api.withdraw(empty, "0.01"))["error"]["code"] == "insufficient_funds"
    assert api.postings(empty) == []


def test_withdrawal_from_an_unknown_or_foreign_wallet_is_404(api: Api, other_api: Api) -> None:
    mine = api.funded_wallet("10.00")
    theirs = other_api.funded_wallet("10.00")
    key = new_key()
    unknown = assert_problem(api.withdraw(UNKNOWN_WALLET, "1.00", key=key), 404, "not_found")
    foreign = assert_problem(api.withdraw(theirs, "1.00", key=key), 404, "not_found")
    # Another tenant's wallet answers exactly as one that does not exist.
    assert {**foreign, "detail": foreign["detail"].replace(theirs, "<id>")} == {
        **unknown,
        "detail": unknown["detail"].replace(UNKNOWN_WALLET, "<id>"),
    }
    assert_problem(api.withdraw("not-a-uuid", "1.00", key=key), 422, "validation_error")
    assert other_api.funds(theirs) == ("10.00", "0.00", "10.00")
    assert len(other_api.postings(theirs)) == 1

    # None of the refusals used up the key.
    accepted = api.withdraw(mine, "1.00", key=key)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    assert api.wait(accepted.json()["id"])["status"] == "succeeded"
    assert api.funds(mine) == ("9.00", "0.00", "9.00")


def test_bad_withdrawal_is_refused_and_moves_nothing(api: Api) -> None:
    wallet = api.funded_wallet("10.00")
    path = f"/v1/wallets/{wallet}/withdrawals"
    key = new_key()
    for name, literal in BAD_AMOUNTS:
        response = send(
            api, "POST", path, body=f'{{"amount": {literal}}}'.encode(), key=key.encode()
        )
        assert response.status_code == 422, (name, response.text)
        assert_problem(response, 422, "validation_error")
    assert_problem(api.post(path, {}, key=key), 422, "validation_error")
    assert_problem(
        api.withdraw(wallet, "1.00", key=key, currency="EUR"), 422, "unsupported_currency"
    )
    assert_problem(
        api.withdraw(wallet, "1.00", key=key, reference="r" * 256), 422, "validation_error"
    )
    assert_problem(api.post(path, {"amount": "1.00"}), 400, "idempotency_key_required")
    assert api.funds(wallet) == ("10.00", "0.00", "10.00")
    assert len(api.postings(wallet)) == 1

    # A number is an amount too; the refusals left the key unused.
    accepted = api.post(path, {"amount": 2.5, "reference": "r" * 255}, key=key)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    assert accepted.json()["amount"] == "2.50" and accepted.json()["currency"] == "USD"
    assert api.wait(accepted.json()["id"])["status"] == "succeeded"
    assert api.funds(wallet) == ("7.50", "0.00", "7.50")


def test_withdrawal_replay_returns_the_same_operation(api: Api) -> None:
    wallet = api.funded_wallet("10.00")
    key = new_key()
    first = api.withdraw(wallet, "5.50", key=key, reference="payout")
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    api.wait(first.json()["id"])

    # The same content, written differently.
    again = api.post(
        f"/v1/wallets/{wallet}/withdrawals",
        {"reference": "payout", "currency": "USD", "amount": 5.5},
        key=key,
    )
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"  # as it is now
    assert api.funds(wallet) == ("4.50", "0.00", "4.50")
    assert [p["type"] for p in api.postings(wallet)] == ["withdrawal", "replenishment"]

    reused = [
        api.withdraw(wallet, "5.00", key=key, reference="payout"),
        api.withdraw(wallet, "5.50", key=key),
        api.replenish(wallet, "5.50", key=key, reference="payout"),
        api.place_hold(wallet, "5.50", key=key, reference="payout"),
    ]
    for response in reused:
        assert_problem(response, 422, "idempotency_key_reused")
    assert api.funds(wallet) == ("4.50", "0.00", "4.50")


def test_failed_withdrawal_stays_failed_on_retry(api: Api) -> None:
    wallet = api.create_wallet()
    key = new_key()
    failed = api.applied(api.withdraw(wallet, "5.00", key=key))
    assert failed["error"]["code"] == "insufficient_funds"
    api.applied(api.replenish(wallet, "10.00"))
    retry = api.withdraw(wallet, "5.00", key=key)
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == failed["id"] and retry.json()["status"] == "failed"
    assert api.funds(wallet) == ("10.00", "0.00", "10.00")
