"""The webhook senders through the real stack, on what they owe the endpoints they serve
beyond one delivery: a disabled endpoint's deliveries kept for when it is enabled again,
and a slow receiver with a backlog never holding every sending thread.

The stack's settings (tests/stack.py): private receivers allowed, retries at most 2 s
apart, a 2 s timeout, 8 sending threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2.extensions
import pytest

from tests.conftest import Stack, query
from tests.helpers import Api
from tests.webhook_receiver import Plan, Receiver, register, wait_attempts

Conn = psycopg2.extensions.connection


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def status(api: Api, endpoint: dict[str, str]) -> str:
    return str(api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()["status"])


def test_enabling_an_endpoint_resumes_its_deliveries(
    stack: Stack, api: Api, receiver: Receiver, db: Conn
) -> None:
    plan = Plan(fail_first=10**6)
    endpoint = register(api, receiver.url("/resumed", plan), ["account.created"])
    api.create_account("kept while disabled")
    [first] = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)[:1]
    # As if every delivery had failed for 73 hours: the next failure disables it.
    query(
        db,
        "UPDATE webhook_endpoint SET failing_since = now() - interval '73 hours' "
        "WHERE id = %s RETURNING 1",
        endpoint["id"],
    )
    deadline = time.monotonic() + 15
    while status(api, endpoint) != "disabled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sent = len(receiver.at("/resumed"))
    time.sleep(3)  # more than the longest retry interval: nothing is sent meanwhile
    assert len(receiver.at("/resumed")) == sent
    [(pending, given_up)] = query(
        db,
        "SELECT next_attempt_at IS NOT NULL, given_up_at IS NOT NULL FROM webhook_delivery "
        "WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert (pending, given_up) == (True, False)

    plan.fail_first = 0  # the receiver is mended
    enabled = api.post(f"/v1/webhook-endpoints/{endpoint['id']}/enable", None)
    assert enabled.status_code == 200, enabled.text
    got = receiver.wait_for("/resumed", lambda got: len(got) > sent, timeout=15)
    assert got[-1].event_id == first[0]
    rows = wait_attempts(db, endpoint["id"], lambda rows: rows[-1][4])
    assert rows[-1][2] == 200
    [(delivered,)] = query(
        db,
        "SELECT delivered_at IS NOT NULL FROM webhook_delivery WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivered


def test_a_slow_receiver_with_a_backlog_leaves_senders_to_the_others(
    stack: Stack, api: Api, other_api: Api, receiver: Receiver
) -> None:
    """A receiver that answers 2xx, but only after 1.5 s, with 40 events to take: it is
    healthy, and holds at most half the sending threads; another tenant's event goes
    out at once."""
    slow = register(api, receiver.url("/slow", Plan(hang=1.5)), ["account.created"])
    try:
        for i in range(40):
            api.create_account(f"backlog {i}")
        receiver.wait_for("/slow", lambda got: len(got) >= 4)
        register(other_api, receiver.url("/prompt"), ["account.created"])
        started = time.monotonic()
        other_api.create_account("not behind the backlog")
        receiver.wait_for("/prompt", lambda got: len(got) >= 1, timeout=10)
        took = time.monotonic() - started
        assert took < 1.2, took
        # The slow one is never sent more than half the threads' worth at once.
        got = receiver.at("/slow")
        for request in got:
            at_once = [
                r
                for r in got
                if r.at <= request.at and (r.answered_at is None or r.answered_at > request.at)
            ]
            assert len(at_once) <= 4
    finally:
        assert api.http.delete(f"/v1/webhook-endpoints/{slow['id']}").status_code == 204
