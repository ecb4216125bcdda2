"""Hold expiry (API.md, "Withdrawals, holds and reversals").

A hold not captured or voided by its `expires_at` is released within a few seconds after
it (status `expired`), in its source wallet's order: whatever was accepted before
`expires_at` (a capture, a void, a withdrawal) is applied before the release. A capture
or void accepted at or after `expires_at` fails `hold_expired`, whatever the hold's
status then.

Holds here expire after 2 seconds; the worker is kept away from a wallet with
`wallet_queue_held` to decide what is applied after `expires_at`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.helpers import Api, wallet_queue_held

# "Within a few seconds after expires_at", with room for a loaded machine.
RELEASE_WITHIN = timedelta(seconds=15)


def expires_at(api: Api, hold_id: str) -> datetime:
    return datetime.fromisoformat(api.hold(hold_id)["expires_at"])


def sleep_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def test_unused_hold_expires_and_is_released(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    hold_id = api.active_hold(source, "4.00", destination, expires_in=2)
    expiry = expires_at(api, hold_id)
    assert api.funds(source) == ("10.00", "4.00", "6.00")
    postings = api.postings(source)

    while True:
        hold = api.hold(hold_id)
        seen_at = datetime.now(UTC)
        if hold["status"] == "expired":
            break
        assert hold["status"] == "held", hold
        assert seen_at < expiry + RELEASE_WITHIN, f"not released {RELEASE_WITHIN} after expiry"
        time.sleep(0.1)
    assert seen_at >= expiry, "released before its expires_at"
    assert (hold["amount"], hold["captured_amount"]) == ("4.00", None)
    assert datetime.fromisoformat(hold["updated_at"]) >= expiry

    assert api.funds(source) == ("10.00", "0.00", "10.00")
    assert api.postings(source) == postings
    assert api.funds(destination) == ("0.00", "0.00", "0.00")
    # An operation's status never changes once final: the hold operation still succeeded.
    assert api.operation(hold_id)["status"] == "succeeded"
    # The released money is free again.
    assert api.applied(api.withdraw(source, "10.00"))["status"] == "succeeded"
    assert api.hold(hold_id)["status"] == "expired"


def test_capture_or_void_accepted_after_expiry_fails_hold_expired(api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    to_capture = api.active_hold(source, "3.00", destination, expires_in=3)
    to_void = api.active_hold(source, "3.00", destination, expires_in=3)
    captured = api.active_hold(source, "3.00", destination, expires_in=3)
    assert api.applied(api.capture(captured, amount="1.00"))["status"] == "succeeded"
    expiry = max(expires_at(api, h) for h in (to_capture, to_void, captured))

    # Just after expires_at, whether or not the release has been applied yet.
    sleep_until(expiry + timedelta(milliseconds=50))
    late = [
        api.capture(to_capture),
        api.void(to_void),
        api.void(captured),  # already captured: hold_expired still comes first
        api.capture(captured, amount="1.00"),
    ]
    for response in late:
        outcome = api.applied(response)
        assert outcome["status"] == "failed", outcome
        assert outcome["error"]["code"] == "hold_expired" and outcome["error"]["message"]
        assert outcome["transaction_id"] is None

    # And once released, the same.
    for hold_id in (to_capture, to_void):
        api.wait_hold(hold_id, {"expired"}, timeout=RELEASE_WITHIN.total_seconds())
    for response in (api.capture(to_capture), api.void(to_capture), api.void(to_void)):
        assert api.applied(response)["error"]["code"] == "hold_expired"

    # A captured hold does not expire.
    hold = api.hold(captured)
    assert (hold["status"], hold["captured_amount"]) == ("captured", "1.00")
    assert api.funds(source) == ("9.00", "0.00", "9.00")
    assert api.funds(destination) == ("1.00", "0.00", "1.00")


def test_capture_and_void_accepted_before_expiry_are_applied_before_the_release(
    api: Api, database_url: str
) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    to_capture = api.active_hold(source, "4.00", destination, expires_in=2)
    to_void = api.active_hold(source, "3.00", destination, expires_in=2)
    expiry = min(expires_at(api, h) for h in (to_capture, to_void))

    with wallet_queue_held(database_url, source):
        capture = api.capture(to_capture, amount="2.50")
        void = api.void(to_void)
        assert capture.status_code == void.status_code == 202, (capture.text, void.text)
        assert datetime.now(UTC) < expiry, "the test must submit them before expires_at"
        # Past expires_at, long enough for a release to be due, and a void after it.
        sleep_until(expiry + timedelta(seconds=1.5))
        late_void = api.void(to_capture)
        assert api.operation(capture.json()["id"])["status"] == "pending"

    captured = api.wait(capture.json()["id"])
    assert captured["status"] == "succeeded", captured
    assert captured["amount"] == "2.50"
    voided = api.wait(void.json()["id"])
    assert voided["status"] == "succeeded", voided
    # Accepted after expires_at, even though the capture ahead of it is what ended the hold.
    assert api.wait(late_void.json()["id"])["error"]["code"] == "hold_expired"

    hold = api.hold(to_capture)
    assert (hold["status"], hold["captured_amount"]) == ("captured", "2.50")
    assert api.hold(to_void)["status"] == "voided"
    assert api.funds(source) == ("7.50", "0.00", "7.50")
    assert api.funds(destination) == ("2.50", "0.00", "2.50")


def test_release_takes_its_place_in_the_wallets_order(api: Api, database_url: str) -> None:
    source = api.funded_wallet("10.00")
    hold_id = api.active_hold(source, "10.00", expires_in=2)
    expiry = expires_at(api, hold_id)

    with wallet_queue_held(database_url, source):
        # Accepted while the hold reserved everything: applied before the release, it
        # finds nothing available, however late the worker gets to it.
        early = api.withdraw(source, "10.00")
        assert early.status_code == 202, early.text
        assert datetime.now(UTC) < expiry, "the test must submit it before expires_at"
        sleep_until(expiry + timedelta(seconds=1.5))

    assert api.wait(early.json()["id"])["error"]["code"] == "insufficient_funds"
    api.wait_hold(hold_id, {"expired"}, timeout=RELEASE_WITHIN.total_seconds())
    assert api.funds(source) == ("10.00", "0.00", "10.00")
    assert api.applied(api.withdraw(source, "10.00"))["status"] == "succeeded"
    assert api.funds(source) == ("0.00", "0.00", "0.00")
