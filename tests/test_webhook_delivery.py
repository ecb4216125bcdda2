"""Webhook deliveries through the real stack (`paysys webhooks` among its services): what
arrives, signed how; retries and their backoff; what counts as a failure (an error status,
a timeout, a redirect); a huge answer; giving up, disabling; deletion; and the ledger never
waiting on any of it.

The stack's settings (tests/stack.py): private receivers allowed, retries 0.2 s x 2^(n-1)
apart at most 2 s, a 2 s timeout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import psycopg2.extensions
import pytest

from paysys.client import verify_webhook
from tests.conftest import Stack, query
from tests.helpers import Api, new_key
from tests.webhook_receiver import (
    Plan,
    Receiver,
    attempts,
    metric,
    register,
    wait_attempts,
)

BASE = 0.2  # PAYSYS_WEBHOOK_RETRY_BASE_SECONDS in the stack
MAX_INTERVAL = 2.0
TIMEOUT = 2.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def feed(api: Api) -> list[dict[str, Any]]:
    response = api.get("/v1/events", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_an_event_reaches_a_subscribed_endpoint_signed(
    stack: Stack, api: Api, receiver: Receiver
) -> None:
    before = api.create_account("before registration")
    everything = register(api, receiver.url("/all"))
    accounts_only = register(api, receiver.url("/accounts"), ["account.created"])
    operations_only = register(api, receiver.url("/operations"), ["operation.succeeded"])
    account = api.create_account("after registration")
    wallet = account["wallet"]["id"]
    operation = api.applied(api.replenish(wallet, "5.00", key=new_key()))

    got = receiver.wait_for("/accounts", lambda got: len(got) >= 1)
    assert len(got) == 1, [(r.json()["data"]["name"], r.event_id) for r in got]
    [delivered] = got
    event = delivered.json()
    assert event["type"] == "account.created" and event["data"]["id"] == account["id"]
    assert delivered.event_id == event["id"]
    assert delivered.headers["content-type"] == "application/json"
    assert delivered.headers["user-agent"].startswith("paysys-webhooks/")
    checked = verify_webhook(
        delivered.body, delivered.headers["paysys-signature"], accounts_only["secret"]
    )
    assert checked["id"] == event["id"]
    with pytest.raises(ValueError, match="signature"):
        verify_webhook(delivered.body, delivered.headers["paysys-signature"], everything["secret"])
    # The body is the event exactly as the feed serves it.
    [in_feed] = [item for item in feed(api) if item["id"] == event["id"]]
    assert in_feed == event

    got = receiver.wait_for("/operations", lambda got: len(got) >= 1)
    assert [r.json()["type"] for r in got] == ["operation.succeeded"]
    assert got[0].json()["data"]["id"] == operation["id"]
    verify_webhook(got[0].body, got[0].headers["paysys-signature"], operations_only["secret"])

    every = receiver.wait_for("/all", lambda got: len(got) >= 2)
    assert sorted(r.json()["type"] for r in every) == ["account.created", "operation.succeeded"]
    for r in every:
        verify_webhook(r.body, r.headers["paysys-signature"], everything["secret"])
    # Nothing created before the endpoints were registered went to them.
    sent = {r.json()["data"].get("id") for r in receiver.received}
    assert before["id"] not in sent


def test_retries_back_off_until_the_receiver_answers(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    endpoint = register(api, receiver.url("/flaky", Plan(fail_first=3)), ["account.created"])
    api.create_account("retried")
    got = receiver.wait_for("/flaky", lambda got: len(got) >= 4)
    assert len({r.event_id for r in got}) == 1
    rows = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 4)
    assert [row[1] for row in rows] == [1, 2, 3, 4]
    assert [row[2] for row in rows] == [500, 500, 500, 200]
    assert [row[3] for row in rows] == ["status 500"] * 3 + [None]
    assert [row[4] for row in rows] == [False, False, False, True]
    assert rows[3][6] is None  # delivered: no next attempt
    for n, row in enumerate(rows[:3], start=1):
        # Each retry planned base x 2^(n-1) after the attempt, with at most 20 % jitter.
        planned = (row[6] - row[5]).total_seconds()
        nominal = BASE * 2 ** (n - 1)
        assert 0.8 * nominal - 0.001 <= planned <= 1.2 * nominal + 0.001, (n, planned)
    # And the receiver saw them no sooner than planned: the gaps grow.
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)][:3]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= 0.8 * BASE * 2 ** (n - 1) - 0.05, gaps
    assert gaps[2] > gaps[0]
    [delivery] = query(
        db,
        "SELECT attempts, delivered_at IS NOT NULL, next_attempt_at, given_up_at "
        "FROM webhook_delivery WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivery == (4, True, None, None)
    # The log as the API serves it: newest first, attempts counting from 1.
    response = api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries")
    assert response.status_code == 200, response.text
    log = response.json()["items"]
    assert [item["attempt"] for item in log] == [4, 3, 2, 1]
    assert [item["status_code"] for item in log] == [200, 500, 500, 500]
    assert log[0]["next_attempt_at"] is None and log[1]["next_attempt_at"] is not None


def test_a_hanging_receiver_is_a_timeout(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    endpoint = register(
        api, receiver.url("/slow", Plan(hang=30, hang_first=1)), ["account.created"]
    )
    api.create_account("slow")
    rows = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 2)
    assert rows[0][1:5] == (1, None, "timeout", False)
    assert rows[1][1:5] == (2, 200, None, True)
    [first, second] = receiver.at("/slow")[:2]
    # Cut at the timeout, not when the receiver would have answered (30 s).
    assert second.at - first.at < TIMEOUT + 5


def test_a_redirect_is_a_failure_and_is_not_followed(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    target = receiver.url("/target")
    endpoint = register(api, receiver.url("/moved", Plan(redirect_to=target)), ["account.created"])
    api.create_account("redirected")
    rows = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 2)
    assert rows[0][1:5] == (1, 302, "status 302", False)
    assert rows[0][6] is not None  # retried
    assert receiver.at("/target") == []


def test_a_huge_answer_is_not_read(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    huge = 2 * 1024**3  # 2 GiB, if anyone read it all
    plan = Plan(huge=huge)
    endpoint = register(api, receiver.url("/huge", plan), ["account.created"])
    api.create_account("huge answer")
    rows = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)
    assert rows[0][1:5] == (1, 200, None, True)
    receiver.wait_for("/huge", lambda got: bool(got) and got[0].answered_at is not None)
    # The sender hung up after its 64 KiB: what the receiver got out is socket buffers.
    assert plan.huge_bytes_sent < 64 * 1024**2


def test_given_up_once_the_retry_window_has_passed(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    endpoint = register(api, receiver.url("/down", Plan(fail_first=10**6)), ["account.created"])
    api.create_account("never delivered")
    wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)
    given_up_before = metric(stack.base_url, "paysys_webhook_deliveries_given_up_total")
    # As if the event were 72 hours old (PAYSYS_WEBHOOK_RETRY_HOURS): the next retry
    # would come after the window.
    query(
        db,
        "UPDATE webhook_delivery SET event_created_at = now() - interval '72 hours' "
        "WHERE endpoint_id = %s RETURNING 1",
        endpoint["id"],
    )
    rows = wait_attempts(db, endpoint["id"], lambda rows: rows[-1][6] is None, timeout=15)
    last = rows[-1]
    assert last[2:5] == (500, "status 500", False)
    [delivery] = query(
        db,
        "SELECT next_attempt_at, given_up_at IS NOT NULL, delivered_at, attempts "
        "FROM webhook_delivery WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivery == (None, True, None, last[1])
    assert metric(stack.base_url, "paysys_webhook_deliveries_given_up_total") > given_up_before
    # Nothing more is sent for it: deliveries of a later event come and go meanwhile.
    sentinel = register(api, receiver.url("/sentinel"), ["account.created"])
    api.create_account("after giving up")
    receiver.wait_for("/sentinel", lambda got: len(got) >= 1)
    wait_attempts(db, sentinel["id"], lambda rows: len(rows) >= 1)
    given_up = [row for row in attempts(db, endpoint["id"]) if row[0] == last[0]]
    assert given_up == [row for row in rows if row[0] == last[0]]


def test_an_endpoint_failing_for_too_long_is_disabled(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    endpoint = register(api, receiver.url("/dead", Plan(fail_first=10**6)), ["account.created"])
    api.create_account("to a dead endpoint")
    wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)
    [(failing_since,)] = query(
        db, "SELECT failing_since FROM webhook_endpoint WHERE id = %s", endpoint["id"]
    )
    assert failing_since is not None
    # As if every delivery had failed for 73 hours (PAYSYS_WEBHOOK_DISABLE_AFTER_HOURS: 72).
    query(
        db,
        "UPDATE webhook_endpoint SET failing_since = now() - interval '73 hours' "
        "WHERE id = %s RETURNING 1",
        endpoint["id"],
    )
    deadline = time.monotonic() + 15
    while True:
        shown = api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
        if shown["status"] == "disabled":
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    assert shown["disabled_reason"] == (
        "every delivery failed for over 72 hours; last error: status 500"
    )
    assert "disabled" in stack.webhooks.log() and endpoint["id"] in stack.webhooks.log()
    assert metric(stack.base_url, "paysys_webhook_endpoints_disabled") >= 1
    # Disabled: its pending retry waits unsent (until it is enabled: see
    # test_webhook_senders.py), and new events are not fanned out.
    sent = len(receiver.at("/dead"))
    register(api, receiver.url("/alive"), ["account.created"])
    api.create_account("after disabling")
    receiver.wait_for("/alive", lambda got: len(got) >= 1)
    time.sleep(2 * MAX_INTERVAL)
    assert len(receiver.at("/dead")) == sent
    [delivery] = query(
        db,
        "SELECT next_attempt_at IS NOT NULL, given_up_at FROM webhook_delivery "
        "WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivery == (True, None)


def test_deleting_an_endpoint_stops_its_deliveries(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    endpoint = register(api, receiver.url("/gone", Plan(fail_first=10**6)), ["account.created"])
    api.create_account("to be stopped")
    wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)
    assert api.http.delete(f"/v1/webhook-endpoints/{endpoint['id']}").status_code == 204
    # Its retries are retired, never sent: given up, no next attempt.
    deadline = time.monotonic() + 15
    while query(
        db,
        "SELECT 1 FROM webhook_delivery WHERE endpoint_id = %s AND next_attempt_at IS NOT NULL",
        endpoint["id"],
    ):
        assert time.monotonic() < deadline, "the deleted endpoint's delivery is still due"
        time.sleep(0.05)
    sent = len(receiver.at("/gone"))
    sentinel = register(api, receiver.url("/stays"), ["account.created"])
    api.create_account("after deletion")
    receiver.wait_for("/stays", lambda got: len(got) >= 1)
    wait_attempts(db, sentinel["id"], lambda rows: len(rows) >= 1)
    assert len(receiver.at("/gone")) == sent
    [(deliveries,)] = query(
        db, "SELECT count(*) FROM webhook_delivery WHERE endpoint_id = %s", endpoint["id"]
    )
    assert deliveries == 1  # the event after deletion was not fanned out to it


def test_a_hanging_receiver_does_not_slow_the_ledger(
    stack: Stack, api: Api, receiver: Receiver
) -> None:
    register(api, receiver.url("/stuck", Plan(hang=60)))
    wallet = api.create_wallet("busy")
    receiver.wait_for("/stuck", lambda got: len(got) >= 1)  # a sender is now held
    started = time.monotonic()
    operations = [api.replenish(wallet, "1.00", key=new_key()).json()["id"] for _ in range(40)]
    for operation_id in operations:
        assert api.wait(operation_id, timeout=30)["status"] == "succeeded"
    took = time.monotonic() - started
    # Each delivery to it hangs for the 2 s timeout; the ledger never waits on one.
    assert took < 10, took
    assert len(receiver.at("/stuck")) >= 1


def test_one_hanging_receiver_does_not_hold_the_others(
    stack: Stack, api: Api, other_api: Api, receiver: Receiver
) -> None:
    register(api, receiver.url("/hangs", Plan(hang=60)))
    for i in range(20):
        api.create_account(f"hanging {i}")
    receiver.wait_for("/hangs", lambda got: len(got) >= 1)
    register(other_api, receiver.url("/fine"), ["account.created"])
    started = time.monotonic()
    other_api.create_account("fine")
    receiver.wait_for("/fine", lambda got: len(got) >= 1, timeout=10)
    assert time.monotonic() - started < TIMEOUT + 3
