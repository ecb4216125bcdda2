"""The event feed (API.md, "Events and webhooks"): every change with its event, written in
the change's transaction; the feed oldest first, in the order of application per wallet;
a cursor that never skips an event that commits late; long poll; filters; tenants."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2

from tests.conftest import query
from tests.helpers import Api, assert_problem, new_key

TYPES = {"account.created", "operation.succeeded", "operation.failed", "batch.completed"}


def feed(api: Api, cursor: str | None = None, **params: Any) -> dict[str, Any]:
    if cursor is not None:
        params["cursor"] = cursor
    response = api.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    page = dict(response.json())
    assert isinstance(page["next_cursor"], str), page
    return page


def tail(api: Api, cursor: str | None = None, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every event after `cursor` that the feed serves now, and the cursor after them."""
    events: list[dict[str, Any]] = []
    while True:
        page = feed(api, cursor, **params)
        events += page["items"]
        if page["next_cursor"] == cursor and not page["items"]:
            return events, cursor or ""
        cursor = page["next_cursor"]
        if not page["items"]:
            return events, cursor


def wait_for_events(
    api: Api, count: int, cursor: str | None = None, timeout: float = 30, **params: Any
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        page = feed(api, cursor, wait=2, **params)
        seen += page["items"]
        cursor = page["next_cursor"]
    return seen


def test_an_account_creation_is_an_event_with_the_account_as_created(api: Api) -> None:
    account = api.create_account("Ada")
    [event] = wait_for_events(api, 1)
    assert event["type"] == "account.created"
    assert event["data"] == account
    uuid.UUID(event["id"])
    assert event["created_at"].endswith("Z")
    assert api.get(f"/v1/events/{event['id']}").json() == event


def test_final_operations_have_one_event_each_with_the_operation_as_final(api: Api) -> None:
    source = api.funded_wallet("10.00")
    target = api.create_wallet()
    good = api.applied(api.transfer(source, target, "4.00"))
    bad = api.applied(api.transfer(source, target, "100.00"))
    assert (good["status"], bad["status"]) == ("succeeded", "failed")

    events = wait_for_events(api, 5)  # two accounts, a replenishment, two transfers
    by_operation = {e["data"]["id"]: e for e in events if e["type"].startswith("operation.")}
    assert by_operation[good["id"]]["type"] == "operation.succeeded"
    assert by_operation[good["id"]]["data"] == api.operation(good["id"])
    assert by_operation[bad["id"]]["type"] == "operation.failed"
    assert by_operation[bad["id"]]["data"] == api.operation(bad["id"])
    assert by_operation[bad["id"]]["data"]["error"]["code"] == "insufficient_funds"
    assert len(by_operation) == 3
    assert len({e["id"] for e in events}) == len(events) == 5


def test_feed_pages_forward_and_filters_by_type(api: Api) -> None:
    wallets = [api.create_wallet(f"w{i}") for i in range(5)]
    for wallet in wallets:
        api.applied(api.replenish(wallet, "1.00"))
    everything = wait_for_events(api, 10)
    assert [e["type"] for e in everything[:5]] == ["account.created"] * 5
    assert [e["data"]["wallet"]["id"] for e in everything[:5]] == wallets

    paged, cursor = [], None
    for _ in range(20):
        page = feed(api, cursor, limit=3)
        assert len(page["items"]) <= 3
        paged += page["items"]
        cursor = page["next_cursor"]
        if not page["items"]:
            break
    assert [e["id"] for e in paged] == [e["id"] for e in everything]

    succeeded, _ = tail(api, type="operation.succeeded")
    assert [e["id"] for e in succeeded] == [
        e["id"] for e in everything if e["type"] == "operation.succeeded"
    ]
    both, _ = tail(api, type=["operation.succeeded", "account.created"])
    assert len(both) == 10
    assert tail(api, type="batch.completed")[0] == []


def test_bad_feed_requests_are_refused(api: Api) -> None:
    for params in (
        {"type": "operation.exploded"},
        {"cursor": "nonsense"},
        {"cursor": "f99999999999999999999_1"},
        {"limit": 0},
        {"limit": 201},
        {"wait": 31},
        {"wait": -1},
        {"wait": "soon"},
    ):
        assert_problem(api.get("/v1/events", params=params), 422, "validation_error")
    assert_problem(api.get(f"/v1/events/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(api.get("/v1/events/not-a-uuid"), 422, "validation_error")


def test_tenants_see_only_their_own_events(api: Api, other_api: Api) -> None:
    api.create_account("mine")
    [mine] = wait_for_events(api, 1)
    other_api.create_account("theirs")
    [theirs] = wait_for_events(other_api, 1)
    assert tail(api)[0] == [mine]
    assert_problem(other_api.get(f"/v1/events/{mine['id']}"), 404, "not_found")
    assert theirs["data"]["name"] == "theirs"


def test_an_empty_feed_still_gives_a_cursor_and_a_long_poll_waits_it_out(api: Api) -> None:
    page = feed(api)
    assert page["items"] == []
    started = time.monotonic()
    again = feed(api, page["next_cursor"], wait=1.5)
    assert again["items"] == []
    assert 1.3 <= time.monotonic() - started < 5
    assert again["next_cursor"] >= page["next_cursor"] or again["next_cursor"]


def test_a_long_poll_is_answered_as_soon_as_an_event_exists(api: Api) -> None:
    cursor = feed(api)["next_cursor"]
    timer = threading.Timer(1.0, lambda: api.create_account("late"))
    timer.start()
    started = time.monotonic()
    page = feed(api, cursor, wait=20)
    took = time.monotonic() - started
    timer.join()
    assert [e["type"] for e in page["items"]] == ["account.created"]
    assert 0.9 <= took < 4, took  # woken by the announcement, not by the 20 s bound


def test_a_long_poll_is_woken_by_the_worker_for_an_operation(api: Api) -> None:
    wallet = api.create_wallet()
    wait_for_events(api, 1)
    cursor = tail(api)[1]
    timer = threading.Timer(0.5, lambda: api.replenish(wallet, "2.00"))
    timer.start()
    started = time.monotonic()
    page = feed(api, cursor, wait=20, type="operation.succeeded")
    timer.join()
    assert [e["data"]["wallet_id"] for e in page["items"]] == [wallet]
    assert time.monotonic() - started < 6


def test_batch_completion_is_one_event(api: Api) -> None:
    wallets = [api.create_wallet(f"b{i}") for i in range(30)]
    response = api.post(
        "/v1/replenishment-batches",
        {"items": [{"wallet_id": w, "amount": "1.00"} for w in wallets * 3]},
        key=new_key(),
    )
    assert response.status_code == 202, response.text
    batch = response.json()
    deadline = time.monotonic() + 60
    completed: list[dict[str, Any]] = []
    while not completed and time.monotonic() < deadline:
        completed = list(tail(api, type="batch.completed")[0])
        time.sleep(0.2)
    assert len(completed) == 1, completed
    final = api.get(f"/v1/replenishment-batches/{batch['id']}").json()
    assert completed[0]["data"] == final
    assert final["status"] == "completed" and final["succeeded"] == 90
    # Its items' events all come before it.
    everything = tail(api)[0]
    position = [e["id"] for e in everything].index(completed[0]["id"])
    items = [e for e in everything if e["data"].get("batch_id") == batch["id"]]
    assert len(items) == 90
    assert all([e["id"] for e in everything].index(e["id"]) < position for e in items)


def test_every_final_operation_has_exactly_one_event(api: Api, db: Any) -> None:
    wallets = [api.funded_wallet("5.00", f"c{i}") for i in range(6)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda i: api.transfer(wallets[i % 6], wallets[(i * 5 + 1) % 6], "1.50"),
                range(60),
            )
        )
    ids = [r.json()["id"] for r in responses if r.status_code == 202]
    for operation_id in ids:
        api.wait(operation_id)
    tenant_rows = query(
        db,
        "SELECT o.id, count(e.id) FROM operation o LEFT JOIN event e ON e.tenant_id = o.tenant_id"
        " AND e.type LIKE 'operation.%%' AND (e.data->>'id')::uuid = o.id"
        " WHERE o.id = ANY(%s::uuid[]) GROUP BY o.id",
        ids,
    )
    assert len(tenant_rows) == len(ids) == 60
    assert {count for _, count in tenant_rows} == {1}


def test_each_wallets_events_follow_the_order_its_postings_were_written(api: Api) -> None:
    """Transfers among a few wallets, from many clients at once: the credits a wallet gets
    from other wallets' queues and its own debits are applied by different drains; the
    feed must still show them in the order they were applied (its postings' order)."""
    wallets = [api.funded_wallet("50.00", f"o{i}") for i in range(4)]
    with ThreadPoolExecutor(12) as pool:
        responses = list(
            pool.map(
                lambda i: api.transfer(
                    wallets[i % 4], wallets[(i % 4 + 1 + i // 4 % 3) % 4], "0.75"
                ),
                range(200),
            )
        )
    for response in responses:
        api.wait(response.json()["id"])
    events = tail(api, type="operation.succeeded")[0]
    operation_order = [e["data"]["id"] for e in events]
    for wallet in wallets:
        postings = api.postings(wallet)  # newest first
        by_postings = [p["operation_id"] for p in reversed(postings)]
        in_feed = [o for o in operation_order if o in set(by_postings)]
        assert in_feed == by_postings, wallet


def test_a_cursor_never_skips_an_event_that_commits_late(api: Api, database_url: str) -> None:
    """A transaction that wrote an event and has not committed yet holds the feed back:
    the events committed after it (with later ids, but also those with earlier ones) are
    not served past it, and once it commits a tailing reader sees every event once."""
    api.create_account("before")
    seen, cursor = tail(api)
    tenant = query_tenant(database_url, seen[0]["id"])
    slow = psycopg2.connect(database_url)
    try:
        account = str(uuid.uuid4())
        with slow.cursor() as cur:  # an account created as the intake does, slowly
            cur.execute(
                "INSERT INTO account (id, tenant_id, name) VALUES (%s, %s, 'slow')",
                (account, tenant),
            )
            wallet = str(uuid.uuid4())
            cur.execute(
                "INSERT INTO wallet (id, account_id, tenant_id, currency)"
                " VALUES (%s, %s, %s, 'USD')",
                (wallet, account, tenant),
            )
            cur.execute("INSERT INTO wallet_sequence (wallet_id) VALUES (%s)", (wallet,))
            cur.execute(
                "INSERT INTO event (id, tenant_id, type, data) VALUES"
                " (%s, %s, 'account.created', json_build_object('id', %s::text, 'slow', true))",
                (str(uuid.uuid4()), tenant, account),
            )
        for i in range(3):
            api.create_account(f"after {i}")
        time.sleep(0.3)
        during, cursor = tail(api, cursor)
        assert during == []  # committed, but behind a transaction that may still commit
        slow.commit()
    finally:
        slow.close()
    after, _ = tail(api, cursor)
    assert [e["data"].get("slow") for e in after] == [True, None, None, None]
    assert [e["data"].get("name") for e in after[1:]] == ["after 0", "after 1", "after 2"]


def test_a_tailing_reader_sees_every_event_once_while_events_are_written(api: Api) -> None:
    source = api.funded_wallet("1000.00", "source")
    targets = [api.create_wallet(f"t{i}") for i in range(5)]
    stop = threading.Event()
    seen: list[dict[str, Any]] = []

    def consume() -> None:
        cursor: str | None = None
        while not stop.is_set() or cursor is None:
            page = feed(api, cursor, limit=7, wait=1)
            seen.extend(page["items"])
            cursor = page["next_cursor"]
        # Drain what is left once the writers stopped.
        for _ in range(50):
            page = feed(api, cursor, limit=50, wait=1)
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if not page["items"]:
                break

    consumer = threading.Thread(target=consume)
    consumer.start()
    with ThreadPoolExecutor(10) as pool:
        responses = list(
            pool.map(
                lambda i: (
                    api.create_account(f"n{i}")
                    if i % 5 == 0
                    else api.transfer(source, targets[i % 5], "0.10").json()
                ),
                range(150),
            )
        )
    for response in responses:
        if "status" in response:
            api.wait(response["id"])
    time.sleep(0.5)
    stop.set()
    consumer.join(timeout=120)
    everything = tail(api)[0]
    assert len(everything) == 7 + 150
    assert [e["id"] for e in seen] == [e["id"] for e in everything]


def query_tenant(database_url: str, event_id: str) -> str:
    conn = psycopg2.connect(database_url)
    try:
        [(tenant,)] = query(conn, "SELECT tenant_id::text FROM event WHERE id = %s", event_id)
        return str(tenant)
    finally:
        conn.close()


def test_a_hold_left_alone_expires_with_one_event_carrying_the_expired_hold(api: Api) -> None:
    source = api.funded_wallet("10.00")
    hold_id = api.active_hold(source, "4.00", None, expires_in=2)
    expired = api.wait_hold(hold_id, {"expired"})
    deadline = time.monotonic() + 15
    events: list[dict[str, Any]] = []
    while not events and time.monotonic() < deadline:
        events = feed(api, type="hold.expired", wait=2)["items"]
    assert len(events) == 1, events
    assert events[0]["data"] == expired
    # The hold operation itself succeeded (its own event); the release is not an operation
    # of the API, so it has no operation event.
    operations = [e["data"]["id"] for e in tail(api, type="operation.succeeded")[0]]
    assert hold_id in operations
    assert len(operations) == 2  # the replenishment and the hold
