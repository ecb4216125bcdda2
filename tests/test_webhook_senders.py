"""The webhook senders through the real stack, on what they owe the endpoints they serve
beyond one delivery: a disabled endpoint's deliveries kept for when it is enabled again,
a slow receiver with a backlog never holding every sending thread, paysys's own failures
never held against a receiver, and a new account waking the senders for its event.

The stack's settings (tests/stack.py): private receivers allowed, retries at most 2 s
apart, a 2 s timeout, 8 sending threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2.extensions
import pytest
import redis
from cryptography.fernet import Fernet

from paysys.client import verify_webhook
from shared.doorbell import webhooks_doorbell_key
from shared.settings import get_settings
from tests.conftest import Stack, query
from tests.helpers import Api
from tests.stack import REDIS_URL
from tests.webhook_receiver import Plan, Receiver, attempts, metric, register, wait_attempts

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


def wait_metric(stack: Stack, name: str, at_least: float, timeout: float = 15) -> float:
    deadline = time.monotonic() + timeout
    while (value := metric(stack.base_url, name)) < at_least:
        assert time.monotonic() < deadline, (name, value, at_least)
        time.sleep(0.1)
    return value


def test_a_secret_paysys_cannot_unseal_is_not_held_against_the_receiver(
    stack: Stack, api: Api, receiver: Receiver, db: Conn
) -> None:
    endpoint = register(api, receiver.url("/unsealable"), ["account.created"])
    [(stored,)] = query(db, "SELECT secret FROM webhook_endpoint WHERE id = %s", endpoint["id"])
    # As if sealed with a key since dropped from PAYSYS_WEBHOOK_SECRET_KEYS (none is set).
    lost = "fernet:" + Fernet(Fernet.generate_key()).encrypt(b"whsec_lost").decode()
    query(
        db,
        "UPDATE webhook_endpoint SET secret = %s WHERE id = %s RETURNING 1",
        lost,
        endpoint["id"],
    )
    errors = 'paysys_webhook_internal_errors_total{cause="error"}'
    before = metric(stack.base_url, errors)
    api.create_account("signed once the key is back")
    wait_metric(stack, errors, before + 1)
    # Past its retry window meanwhile: still never given up for paysys's own failure.
    query(
        db,
        "UPDATE webhook_delivery SET event_created_at = now() - interval '100 hours' "
        "WHERE endpoint_id = %s RETURNING 1",
        endpoint["id"],
    )
    wait_metric(stack, errors, before + 2)
    [health] = query(
        db,
        "SELECT failing_since, disabled_at FROM webhook_endpoint WHERE id = %s",
        endpoint["id"],
    )
    assert health == (None, None)
    [delivery] = query(
        db,
        "SELECT attempts, next_attempt_at IS NOT NULL, given_up_at FROM webhook_delivery "
        "WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivery == (0, True, None)
    assert attempts(db, endpoint["id"]) == []  # nothing was sent: no attempt in its log
    assert receiver.at("/unsealable") == []
    log = stack.webhooks.log()
    assert "failed inside paysys" in log and "SecretKeysError" in log

    query(
        db,
        "UPDATE webhook_endpoint SET secret = %s WHERE id = %s RETURNING 1",
        stored,
        endpoint["id"],
    )
    [got] = receiver.wait_for("/unsealable", lambda got: len(got) >= 1, timeout=15)
    verify_webhook(got.body, got.headers["paysys-signature"], endpoint["secret"])
    rows = wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 1)
    assert [row[1:5] for row in rows] == [(1, 200, None, True)]


def test_a_new_account_wakes_the_senders(stack: Stack, api: Api) -> None:
    """Its account.created event may be for an endpoint: the API rings the senders'
    doorbell (looked at with the senders and the sweeper stopped, so that nothing else
    rings it nor clears it)."""
    key = webhooks_doorbell_key(get_settings())
    client = redis.Redis.from_url(REDIS_URL)
    stack.sweeper.stop()
    stack.webhooks.stop()
    try:

        def rung() -> None:  # (in the background: it may come after the answer)
            deadline = time.monotonic() + 5
            while not client.exists(key):
                assert time.monotonic() < deadline, "the account's creation rang nothing"
                time.sleep(0.05)
            client.delete(key)

        client.delete(key)
        api.create_account("rings")
        rung()
        assert api.post("/v1/accounts", {"name": "once"}, key="k1").status_code == 201
        rung()
        again = api.post("/v1/accounts", {"name": "once"}, key="k1")
        assert again.headers.get("idempotent-replayed") == "true"
        time.sleep(0.5)
        assert not client.exists(key)  # a replay created nothing: nothing to send
    finally:
        client.close()
        stack.webhooks.start()
        stack.sweeper.start()
        stack.webhooks.wait_for_log("ready.", timeout=60)


def test_no_secret_in_the_senders_log(stack: Stack, api: Api, receiver: Receiver, db: Conn) -> None:
    endpoint = register(api, receiver.url("/logged", Plan(fail_first=2)), ["account.created"])
    api.create_account("failed twice, then delivered")
    wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 3 and rows[-1][4])
    [(stored,)] = query(db, "SELECT secret FROM webhook_endpoint WHERE id = %s", endpoint["id"])
    for service in stack.services:
        assert endpoint["secret"] not in service.log(), service.name
        assert stored not in service.log(), service.name
    # The stack stores secrets in the clear (no PAYSYS_WEBHOOK_SECRET_KEYS): both processes
    # that handle them said so at their start.
    for service in (stack.api, stack.webhooks):
        warned = [
            line
            for line in service.log().splitlines()
            if "webhook signing secrets are stored unencrypted" in line
        ]
        assert warned and all("WARNING" in line for line in warned), service.name
