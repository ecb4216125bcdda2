"""Holds, captures and voids (API.md, "Withdrawals, holds and reversals").

A hold reserves money on its source wallet: `held` grows and `available` shrinks, while
the balance and the postings do not change. One capture moves at most the held amount
(to the hold's destination, or out through the funding side) and releases the whole
hold; a void releases it. Anything else on a hold that is no longer held fails
`hold_not_active`. Expiry is in test_hold_expiry.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from tests.helpers import Api, assert_problem, new_key, wallet_queue_held
from tests.hostile import UNKNOWN_WALLET, send
from tests.hostile_tables import BAD_AMOUNTS

HOLD_FIELDS = {
    "id",
    "status",
    "from_wallet_id",
    "to_wallet_id",
    "amount",
    "captured_amount",
    "currency",
    "reference",
    "expires_at",
    "created_at",
    "updated_at",
}
WEEK = 604800
# expires_at is computed on the server's clock, the same one as the tests'; this allows
# for its rounding.
SLACK = timedelta(seconds=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def assert_expires_in(
    hold: dict[str, Any], before: datetime, after: datetime, seconds: int
) -> None:
    """The hold expires `seconds` after it was accepted, between `before` and `after`."""
    expires_at = at(hold["expires_at"])
    assert before + timedelta(seconds=seconds) - SLACK <= expires_at, (before, hold)
    assert expires_at <= after + timedelta(seconds=seconds) + SLACK, (after, hold)


def tenant_total(api: Api) -> Decimal:
    """The sum of the balances of every wallet the tenant has."""
    accounts = api.pages("/v1/accounts")
    return sum((Decimal(a["wallet"]["balance"]) for a in accounts), Decimal(0))


# --- holds ------------------------------------------------------------------------------


def test_hold_is_accepted_then_reserves_the_amount(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    before = datetime.now(UTC)
    response = api.place_hold(source, "20.00", destination, reference="order 9", expires_in=3600)
    after = datetime.now(UTC)
    assert response.status_code == 202, response.text
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["type"] == "hold"
    assert operation["status"] in {"pending", "succeeded"}
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (source, destination)
    assert operation["wallet_id"] is None
    assert (operation["amount"], operation["currency"]) == ("20.00", "USD")
    assert operation["reference"] == "order 9"
    assert operation["reverses_operation_id"] is None
    assert operation["reversed_amount"] == "0.00"

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded" and final["error"] is None
    assert final["transaction_id"] is None  # a hold writes no postings

    # The hold operation's id is the hold's id.
    hold = api.hold(operation["id"])
    assert hold.keys() >= HOLD_FIELDS
    assert hold["id"] == operation["id"]
    assert hold["status"] == "held"
    assert (hold["from_wallet_id"], hold["to_wallet_id"]) == (source, destination)
    assert (hold["amount"], hold["captured_amount"]) == ("20.00", None)
    assert (hold["currency"], hold["reference"]) == ("USD", "order 9")
    assert_expires_in(hold, before, after, 3600)
    assert at(hold["created_at"]) <= at(hold["updated_at"])

    assert api.funds(source) == ("50.00", "20.00", "30.00")
    assert [p["type"] for p in api.postings(source)] == ["replenishment"]
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    assert api.postings(destination) == []
    account = api.get(f"/v1/accounts/{api.wallet(source)['account_id']}")
    assert (account.json()["wallet"]["held"], account.json()["wallet"]["available"]) == (
        "20.00",
        "30.00",
    )


def test_hold_is_pending_until_applied(api: Api, database_url: str) -> None:
    source = api.funded_wallet("10.00")
    with wallet_queue_held(database_url, source):
        response = api.place_hold(source, "4.00")
        assert response.status_code == 202, response.text
        hold_id = response.json()["id"]
        hold = api.hold(hold_id)
        assert hold["status"] == "pending"
        assert (hold["amount"], hold["captured_amount"]) == ("4.00", None)
        assert api.funds(source) == ("10.00", "0.00", "10.00")
    assert api.wait(hold_id)["status"] == "succeeded"
    assert api.hold(hold_id)["status"] == "held"
    assert api.funds(source) == ("10.00", "4.00", "6.00")


def test_hold_beyond_the_available_balance_fails(api: Api) -> None:
    source = api.funded_wallet("10.00")
    api.active_hold(source, "6.00")
    failed = api.applied(api.place_hold(source, "4.01"))
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "insufficient_funds" and failed["error"]["message"]
    assert failed["transaction_id"] is None
    hold = api.hold(failed["id"])
    assert hold["status"] == "failed" and hold["captured_amount"] is None
    assert api.funds(source) == ("10.00", "6.00", "4.00")

    api.active_hold(source, "4.00")
    assert api.funds(source) == ("10.00", "10.00", "0.00")
    # Transfers and further holds see only what is available.
    other = api.create_wallet()
    assert api.applied(api.transfer(source, other, "0.01"))["error"]["code"] == "insufficient_funds"
    assert api.applied(api.place_hold(source, "0.01"))["error"]["code"] == "insufficient_funds"
    assert api.funds(source) == ("10.00", "10.00", "0.00")
    assert api.funds(other) == ("0.00", "0.00", "0.00")
    empty = api.create_wallet()
    assert api.applied(api.place_hold(empty, "0.01"))["error"]["code"] == "insufficient_funds"


def test_hold_destination_is_optional_and_expiry_defaults_to_a_week(api: Api) -> None:
    source = api.funded_wallet("5.00")
    before = datetime.now(UTC)
    response = api.place_hold(source, "5.00")
    after = datetime.now(UTC)
    operation = api.applied(response)
    assert operation["status"] == "succeeded"
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (source, None)
    hold = api.hold(operation["id"])
    assert hold["status"] == "held"
    assert (hold["from_wallet_id"], hold["to_wallet_id"]) == (source, None)
    assert hold["reference"] is None
    assert_expires_in(hold, before, after, WEEK)
    assert api.funds(source) == ("5.00", "5.00", "0.00")


def test_expires_in_is_one_second_to_thirty_days(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    for seconds in (1, 2592000):
        before = datetime.now(UTC)
        response = api.place_hold(source, "1.00", destination, expires_in=seconds)
        after = datetime.now(UTC)
        assert response.status_code == 202, response.text
        assert_expires_in(api.hold(response.json()["id"]), before, after, seconds)

    key = new_key()
    for bad in (0, -1, 2592001, 1.5, "abc", True, [60], {"seconds": 60}):
        response = api.place_hold(source, "1.00", destination, key=key, expires_in=bad)
        assert response.status_code == 422, (bad, response.text)
        assert_problem(response, 422, "validation_error")
    accepted = api.place_hold(source, "1.00", destination, key=key, expires_in=60)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers


def test_hold_from_a_wallet_to_itself_is_refused(api: Api) -> None:
    wallet = api.funded_wallet("5.00")
    key = new_key()
    assert_problem(api.place_hold(wallet, "1.00", wallet, key=key), 422, "same_wallet")
    assert api.funds(wallet) == ("5.00", "0.00", "5.00")
    assert api.place_hold(wallet, "1.00", key=key).status_code == 202


def test_bad_hold_is_refused(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    key = new_key()
    for name, literal in BAD_AMOUNTS:
        wallets = f'"from_wallet_id": "{source}", "to_wallet_id": "{destination}"'
        body = f'{{{wallets}, "amount": {literal}}}'
        response = send(api, "POST", "/v1/holds", body=body.encode(), key=key.encode())
        assert response.status_code == 422, (name, response.text)
        assert_problem(response, 422, "validation_error")
    refused = [
        (api.place_hold(source, "1.00", key=key, currency="EUR"), "unsupported_currency"),
        (api.place_hold(source, "1.00", key=key, reference="r" * 256), "validation_error"),
        (api.post("/v1/holds", {"amount": "1.00"}, key=key), "validation_error"),
        (api.place_hold("not-a-uuid", "1.00", key=key), "validation_error"),
        (api.place_hold(source, "1.00", "not-a-uuid", key=key), "validation_error"),
    ]
    for response, code in refused:
        assert_problem(response, 422, code)
    missing_key = api.post("/v1/holds", {"from_wallet_id": source, "amount": "1.00"})
    assert_problem(missing_key, 400, "idempotency_key_required")
    assert api.funds(source) == ("10.00", "0.00", "10.00")
    accepted = api.place_hold(source, "1.00", key=key)
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers


def test_hold_naming_unknown_wallets_is_404(api: Api, other_api: Api) -> None:
    mine = api.funded_wallet("10.00")
    theirs = other_api.funded_wallet("10.00")
    pairs: list[tuple[str, str | None]] = [
        (UNKNOWN_WALLET, None),
        (UNKNOWN_WALLET, mine),
        (mine, UNKNOWN_WALLET),
        (theirs, None),
        (theirs, mine),
        (mine, theirs),
    ]
    for source, destination in pairs:
        assert_problem(api.place_hold(source, "1.00", destination), 404, "not_found")
    assert api.funds(mine) == ("10.00", "0.00", "10.00")
    assert other_api.funds(theirs) == ("10.00", "0.00", "10.00")


def test_unknown_hold_is_404(api: Api) -> None:
    wallet = api.funded_wallet("10.00")
    # An operation that is not a hold is no hold either.
    replenishment = api.postings(wallet)[0]["operation_id"]
    for hold_id in (str(uuid.uuid4()), replenishment):
        assert_problem(api.get(f"/v1/holds/{hold_id}"), 404, "not_found")
        assert_problem(api.capture(hold_id), 404, "not_found")
        assert_problem(api.capture(hold_id, amount="1.00"), 404, "not_found")
        assert_problem(api.void(hold_id), 404, "not_found")
    assert_problem(api.get("/v1/holds/not-a-uuid"), 422, "validation_error")
    assert_problem(api.capture("not-a-uuid"), 422, "validation_error")
    assert_problem(api.void("not-a-uuid"), 422, "validation_error")
    assert api.funds(wallet) == ("10.00", "0.00", "10.00")


UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _masked(response: httpx.Response) -> dict[str, Any]:
    """The problem, with the ids it names masked: the same for any id that is not found."""
    body = dict(response.json())
    body["detail"] = UUID.sub("<id>", str(body["detail"]))
    return body


def test_another_tenant_finds_nothing_of_a_hold(api: Api, other_api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "4.00", destination)
    captured_hold = api.active_hold(source, "1.00", destination)
    capture = api.applied(api.capture(captured_hold))["id"]
    probes: list[Callable[[str, str], httpx.Response]] = [
        lambda h, c: other_api.get(f"/v1/holds/{h}"),
        lambda h, c: other_api.capture(h),
        lambda h, c: other_api.capture(h, amount="1.00"),
        lambda h, c: other_api.void(h),
        lambda h, c: other_api.reverse(h),
        lambda h, c: other_api.reverse(c),
        lambda h, c: other_api.get(f"/v1/operations/{c}"),
    ]
    for probe in probes:
        response = probe(hold_id, capture)
        assert_problem(response, 404, "not_found")
        assert "4.00" not in response.text and source not in response.text
        twin = probe(str(uuid.uuid4()), str(uuid.uuid4()))
        assert_problem(twin, 404, "not_found")
        assert _masked(response) == _masked(twin)

    assert api.hold(hold_id)["status"] == "held"
    assert api.funds(source) == ("9.00", "4.00", "5.00")
    assert api.funds(destination) == ("1.00", "0.00", "1.00")
    assert api.operation(capture)["reversed_amount"] == "0.00"
    # The owner still can.
    assert api.applied(api.capture(hold_id))["status"] == "succeeded"
    assert api.funds(destination) == ("5.00", "0.00", "5.00")


# --- captures ---------------------------------------------------------------------------


def test_full_capture_moves_the_held_amount_to_the_destination(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    response = api.capture(hold_id, reference="shipped")
    assert response.status_code == 202, response.text
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["id"] != hold_id
    assert operation["type"] == "capture"
    assert operation["hold_id"] == hold_id
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (source, destination)
    assert operation["wallet_id"] is None and operation["reverses_operation_id"] is None
    assert operation["reference"] == "shipped"

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert final["amount"] == "20.00"  # all of the hold by default
    assert final["transaction_id"] is not None
    assert api.funds(source) == ("30.00", "0.00", "30.00")
    assert api.funds(destination) == ("20.00", "0.00", "20.00")
    debit, credit = api.postings(source)[0], api.postings(destination)[0]
    assert debit["type"] == credit["type"] == "capture"
    assert (debit["amount"], debit["balance_after"]) == ("-20.00", "30.00")
    assert (credit["amount"], credit["balance_after"]) == ("20.00", "20.00")
    assert debit["transaction_id"] == credit["transaction_id"] == final["transaction_id"]
    assert debit["operation_id"] == credit["operation_id"] == operation["id"]

    hold = api.hold(hold_id)
    assert hold["status"] == "captured"
    assert (hold["amount"], hold["captured_amount"]) == ("20.00", "20.00")
    assert at(hold["updated_at"]) >= at(hold["created_at"])
    # The hold operation itself stays as it was.
    assert api.operation(hold_id)["status"] == "succeeded"


def test_partial_capture_releases_the_whole_hold(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    final = api.applied(api.capture(hold_id, amount="12.50"))
    assert final["status"] == "succeeded" and final["amount"] == "12.50"
    assert api.funds(source) == ("37.50", "0.00", "37.50")
    assert api.funds(destination) == ("12.50", "0.00", "12.50")
    hold = api.hold(hold_id)
    assert hold["status"] == "captured"
    assert (hold["amount"], hold["captured_amount"]) == ("20.00", "12.50")
    # What was not captured is free again.
    assert api.applied(api.withdraw(source, "37.50"))["status"] == "succeeded"


def test_capture_of_a_hold_without_destination_pays_out(api: Api) -> None:
    source = api.funded_wallet("50.00")
    hold_id = api.active_hold(source, "20.00")
    response = api.capture(hold_id, amount="7.25")
    assert response.status_code == 202, response.text
    operation = api.wait(response.json()["id"])
    assert operation["status"] == "succeeded"
    assert (operation["from_wallet_id"], operation["to_wallet_id"]) == (source, None)
    assert operation["hold_id"] == hold_id
    assert api.funds(source) == ("42.75", "0.00", "42.75")
    posting = api.postings(source)[0]
    assert (posting["type"], posting["amount"]) == ("capture", "-7.25")
    assert posting["transaction_id"] == operation["transaction_id"]
    # No wallet of the tenant received it: it left paysys.
    assert tenant_total(api) == Decimal("42.75")
    assert api.hold(hold_id)["captured_amount"] == "7.25"


def test_capture_above_the_hold_is_refused_at_intake(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    key = new_key()
    for amount in ("20.01", "1000000000.00"):
        assert_problem(api.capture(hold_id, key=key, amount=amount), 422, "validation_error")
    path = f"/v1/holds/{hold_id}/capture"
    for name, literal in BAD_AMOUNTS:
        response = send(
            api, "POST", path, body=f'{{"amount": {literal}}}'.encode(), key=key.encode()
        )
        assert response.status_code == 422, (name, response.text)
        assert_problem(response, 422, "validation_error")
    assert_problem(api.capture(hold_id, key=key, reference="r" * 256), 422, "validation_error")
    assert_problem(api.post(path, {}), 400, "idempotency_key_required")
    assert_problem(api.post(f"/v1/holds/{hold_id}/void", {}), 400, "idempotency_key_required")
    assert api.hold(hold_id)["status"] == "held"
    assert api.funds(source) == ("50.00", "20.00", "30.00")

    accepted = api.capture(hold_id, key=key, amount="20.00")
    assert accepted.status_code == 202, accepted.text
    assert "Idempotent-Replayed" not in accepted.headers
    assert api.wait(accepted.json()["id"])["status"] == "succeeded"
    assert api.funds(destination) == ("20.00", "0.00", "20.00")


def test_one_capture_per_hold(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    first = api.applied(api.capture(hold_id, amount="5.00"))
    assert first["status"] == "succeeded"
    for response in (api.capture(hold_id, amount="5.00"), api.capture(hold_id), api.void(hold_id)):
        again = api.applied(response)
        assert again["status"] == "failed"
        assert again["error"]["code"] == "hold_not_active" and again["error"]["message"]
        assert again["transaction_id"] is None and again["hold_id"] == hold_id
    assert api.funds(source) == ("45.00", "0.00", "45.00")
    assert api.funds(destination) == ("5.00", "0.00", "5.00")
    hold = api.hold(hold_id)
    assert (hold["status"], hold["captured_amount"]) == ("captured", "5.00")


def test_capture_and_void_replays(api: Api) -> None:
    source = api.funded_wallet("50.00")
    hold_id = api.active_hold(source, "20.00")
    key = new_key()
    first = api.capture(hold_id, key=key, amount="5.00")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    api.wait(first.json()["id"])
    again = api.capture(hold_id, key=key, amount=5)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"
    assert_problem(api.capture(hold_id, key=key, amount="6.00"), 422, "idempotency_key_reused")
    assert_problem(api.void(hold_id, key=key), 422, "idempotency_key_reused")
    assert api.funds(source) == ("45.00", "0.00", "45.00")

    other_hold = api.active_hold(source, "10.00")
    void_key = new_key()
    void = api.applied(api.void(other_hold, key=void_key))
    replayed = api.void(other_hold, key=void_key)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == void["id"]
    assert_problem(api.void(hold_id, key=void_key), 422, "idempotency_key_reused")

    hold_key = new_key()
    placed = api.place_hold(source, "1.00", key=hold_key)
    replayed = api.place_hold(source, "1.00", key=hold_key)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == placed.json()["id"]
    assert_problem(api.place_hold(source, "2.00", key=hold_key), 422, "idempotency_key_reused")
    api.wait(placed.json()["id"])
    assert api.funds(source) == ("45.00", "1.00", "44.00")


# --- voids ------------------------------------------------------------------------------


def test_void_releases_the_hold(api: Api) -> None:
    source = api.funded_wallet("50.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "20.00", destination)
    response = api.void(hold_id)
    assert response.status_code == 202, response.text
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["type"] == "void"
    assert operation["hold_id"] == hold_id
    assert operation["from_wallet_id"] == source
    assert operation["wallet_id"] is None and operation["reverses_operation_id"] is None

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert final["transaction_id"] is None  # a void writes no postings
    assert api.funds(source) == ("50.00", "0.00", "50.00")
    assert [p["type"] for p in api.postings(source)] == ["replenishment"]
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    hold = api.hold(hold_id)
    assert (hold["status"], hold["captured_amount"]) == ("voided", None)

    for again in (api.void(hold_id), api.capture(hold_id), api.capture(hold_id, amount="1.00")):
        failed = api.applied(again)
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "hold_not_active"
    assert api.funds(source) == ("50.00", "0.00", "50.00")
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    assert api.hold(hold_id)["status"] == "voided"


def test_a_failed_hold_can_be_neither_captured_nor_voided(api: Api) -> None:
    source = api.funded_wallet("5.00")
    destination = api.create_wallet()
    failed = api.applied(api.place_hold(source, "5.01", destination))
    assert failed["error"]["code"] == "insufficient_funds"
    for response in (api.capture(failed["id"]), api.void(failed["id"])):
        outcome = api.applied(response)
        assert outcome["status"] == "failed"
        assert outcome["error"]["code"] == "hold_not_active"
    assert api.hold(failed["id"])["status"] == "failed"
    assert api.funds(source) == ("5.00", "0.00", "5.00")
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
