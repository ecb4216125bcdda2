"""Webhook deliveries against crashes and against the rules that guard them: a sender
killed mid-delivery (delivered anyway, at least once), the address rule checked at each
delivery and the connection pinned to the checked address, fan-out never passing an event
that commits late, the backoff's bounds, and the gauges of /metrics."""

from __future__ import annotations

import ipaddress
import random
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from shared.settings import Settings, get_settings
from shared.webhooks import fanout, sender
from shared.webhooks.delivery import Claimed, retry_delay
from shared.webhooks.secrets import seal
from shared.webhooks.urls import is_public
from tests.conftest import Stack, query
from tests.helpers import Api
from tests.scratch_ledger import scratch_database
from tests.webhook_receiver import Plan, Receiver, attempts, metric, register, wait_attempts


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_a_delivery_cut_by_a_killed_sender_is_sent_again(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    # The first request hangs until the sender is killed; the next is answered at once.
    endpoint = register(
        api, receiver.url("/crash", Plan(hang=120, hang_first=1)), ["account.created"]
    )
    api.create_account("delivered through a crash")
    [first] = receiver.wait_for("/crash", lambda got: len(got) >= 1)
    stack.webhooks.signal_group(signal.SIGKILL)
    assert stack.webhooks.proc is not None
    stack.webhooks.proc.wait()
    stack.webhooks.start()
    stack.webhooks.wait_for_log("ready.", timeout=60)
    # Its lease (timeout + margin) ends, and the sweeper wakes the new sender for it.
    got = receiver.wait_for("/crash", lambda got: len(got) >= 2, timeout=60)
    assert {r.event_id for r in got} == {first.event_id}
    rows = wait_attempts(db, endpoint["id"], lambda rows: any(r[4] for r in rows))
    # The attempt cut short was never recorded; the count goes on from it.
    assert [row[1:5] for row in rows] == [(2, 200, None, True)]
    [delivery] = query(
        db,
        "SELECT attempts, delivered_at IS NOT NULL FROM webhook_delivery WHERE endpoint_id = %s",
        endpoint["id"],
    )
    assert delivery == (2, True)


def claimed(url: str, settings: Settings) -> Claimed:
    event_id = uuid.uuid4()
    return Claimed(
        endpoint_id=uuid.uuid4(),
        event_id=event_id,
        tenant_id=uuid.uuid4(),
        attempt=1,
        url=url,
        secret=seal("whsec_test", settings),
        failing=False,
        event_type="account.created",
        event_created_at=datetime.now(UTC),
        data=f'{{"id": "{event_id}"}}',
    )


def loopback_name() -> str:
    """A host name other than `localhost` that resolves to a non-public address here."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"the host name {name} does not resolve")
    if is_public(ipaddress.ip_address(address)):
        pytest.skip(f"the host name {name} resolves to a public address")
    return name


def test_the_address_rule_is_checked_at_each_delivery(receiver: Receiver) -> None:
    settings = get_settings().model_copy(update={"webhook_allow_private": False})
    name = loopback_name()
    with sender.make_client(settings) as client:
        for url in (
            f"http://{name}:{receiver.port}/private",  # a name resolving to a private address
            f"http://127.0.0.1:{receiver.port}/private",  # registered while allowed
            f"http://localhost:{receiver.port}/private",
        ):
            outcome = sender.attempt(claimed(url, settings), settings, client)
            assert outcome.status_code is None and not outcome.delivered
            assert outcome.error is not None
            assert outcome.error.startswith("url not allowed: "), outcome.error
            assert "public" in outcome.error
            if name in url:  # the name is said, not the private address it resolves to
                assert socket.gethostbyname(name) not in outcome.error, outcome.error
    assert receiver.at("/private") == []


def test_the_request_goes_to_the_checked_address_under_its_name(receiver: Receiver) -> None:
    settings = get_settings().model_copy(update={"webhook_allow_private": True})
    name = loopback_name()
    url = f"http://{name}:{receiver.port}/pinned?x=1"
    receiver.url("/pinned?x=1")
    with sender.make_client(settings) as client:
        outcome = sender.attempt(claimed(url, settings), settings, client)
    assert outcome.delivered, outcome
    [request] = receiver.at("/pinned?x=1")
    assert request.headers["host"] == f"{name}:{receiver.port}"
    # Nothing listens there: a refused connection is said so.
    with sender.make_client(settings) as client:
        closed = sender.attempt(claimed("http://127.0.0.1:9/", settings), settings, client)
    assert (closed.status_code, closed.error) == (None, "connection refused")


def test_an_address_that_refuses_gives_way_to_the_next(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name with two addresses, the first refusing connections (nothing listens on
    127.0.0.2): the delivery goes to the second, still under the name."""
    settings = get_settings().model_copy(update={"webhook_allow_private": True})
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        if host != "two.example":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in ("127.0.0.2", "127.0.0.1")
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    receiver.url("/second")
    url = f"http://two.example:{receiver.port}/second"
    with sender.make_client(settings) as client:
        outcome = sender.attempt(claimed(url, settings), settings, client)
    assert outcome.delivered, outcome
    [request] = receiver.at("/second")
    assert request.headers["host"] == f"two.example:{receiver.port}"


def test_the_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    settings = Settings(webhook_retry_base_seconds=10, webhook_retry_max_interval_seconds=3600)
    rng = random.Random(1)
    for attempt in range(1, 12):
        nominal = 10 * 2 ** (attempt - 1)
        delays = [retry_delay(attempt, settings, rng) for _ in range(200)]
        assert min(delays) >= 0.8 * min(nominal, 3600) - 1e-9
        assert max(delays) <= min(1.2 * nominal, 3600) + 1e-9
        if nominal * 1.2 < 3600:
            assert max(delays) - min(delays) > 0.2 * nominal  # jittered, both ways
    assert retry_delay(200, settings, rng) <= 3600


def test_fan_out_never_passes_an_event_that_commits_late() -> None:
    for url, conn in scratch_database():
        conn.autocommit = True
        tenant = uuid.uuid4()
        endpoint = uuid.uuid4()
        subscribed = uuid.uuid4()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO tenant (id, name) VALUES (%s, 'fan-out')", (tenant,))
            for id_, types in ((endpoint, ["*"]), (subscribed, ["operation.failed"])):
                cur.execute(
                    "INSERT INTO webhook_endpoint (id, tenant_id, url, event_types, secret, "
                    "fanout_xid) VALUES (%s, %s, 'https://example.com/', %s, 'plain:x', "
                    "pg_snapshot_xmin(pg_current_snapshot()))",
                    (id_, tenant, types),
                )
        late = psycopg2.connect(url)  # takes its transaction id first, commits last
        other = psycopg2.connect(url)
        try:
            late_event = insert_event(late, tenant, "account.created")
            early = [insert_event(conn, tenant, "account.created") for _ in range(3)]
            old = insert_event(conn, tenant, "account.created", created="now() - interval '1h'")
            with other, other.cursor() as cur:
                found = fanout.fan_out(cur, endpoints=10, page=2)
                while found.more:
                    found = fanout.fan_out(cur, endpoints=10, page=2)
            # Nothing of what committed after the late transaction began is final yet.
            assert deliveries(conn, endpoint) == set()
            late.commit()
            # Final once every older transaction of the cluster has ended (other databases'
            # too: the horizon is the cluster's).
            deadline = time.monotonic() + 30
            while deliveries(conn, endpoint) != {late_event, *early}:
                assert time.monotonic() < deadline, deliveries(conn, endpoint)
                with other, other.cursor() as cur:
                    while fanout.fan_out(cur, endpoints=10, page=2).more:
                        pass
                time.sleep(0.05)
            # Every event once, the late one included; none created before the endpoint.
            assert old not in deliveries(conn, endpoint)
            assert deliveries(conn, subscribed) == set()  # not of its types
            with other, other.cursor() as cur:
                assert fanout.fan_out(cur, endpoints=10, page=2).deliveries == 0
        finally:
            late.close()
            other.close()


def insert_event(
    conn: psycopg2.extensions.connection, tenant: uuid.UUID, kind: str, created: str = "now()"
) -> uuid.UUID:
    event_id = uuid.uuid4()
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO event (id, tenant_id, type, created_at, data) "
            f"VALUES (%s, %s, %s, {created}, '{{}}')",
            (event_id, tenant, kind),
        )
    return event_id


def deliveries(conn: psycopg2.extensions.connection, endpoint: uuid.UUID) -> set[uuid.UUID]:
    with conn.cursor() as cur:
        cur.execute("SELECT event_id FROM webhook_delivery WHERE endpoint_id = %s", (endpoint,))
        return {row[0] for row in cur.fetchall()}


def test_metrics_count_attempts_and_show_the_oldest_undelivered(
    stack: Stack, api: Api, receiver: Receiver, db: psycopg2.extensions.connection
) -> None:
    failed_before = attempts_metric(stack, "failed")
    endpoint = register(api, receiver.url("/metrics", Plan(fail_first=10**6)), ["account.created"])
    api.create_account("undelivered")
    wait_attempts(db, endpoint["id"], lambda rows: len(rows) >= 2)
    assert attempts_metric(stack, "failed") >= failed_before + 2
    label = f'paysys_webhook_oldest_undelivered_seconds{{endpoint_id="{endpoint["id"]}"}}'
    deadline = time.monotonic() + 10
    while (age := metric(stack.base_url, label)) == 0:
        assert time.monotonic() < deadline, "no gauge for the failing endpoint"
        time.sleep(0.2)
    assert 0 < age < 120
    assert attempts(db, endpoint["id"])[0][2] == 500


def attempts_metric(stack: Stack, outcome: str) -> float:
    return metric(stack.base_url, f'paysys_webhook_attempts_total{{outcome="{outcome}"}}')
