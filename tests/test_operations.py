from __future__ import annotations

import re
import threading
import time
from decimal import Decimal

import psycopg2
import psycopg2.extensions

from tests.conftest import query
from tests.helpers import Api, assert_problem, hold_wallet_queue, new_key


def test_replenishment_is_accepted_then_applied(api: Api) -> None:
    wallet = api.create_wallet()
    response = api.replenish(wallet, "25.00", reference="top-up 42")
    assert response.status_code == 202
    operation = response.json()
    assert response.headers["location"] == f"/v1/operations/{operation['id']}"
    assert operation["type"] == "replenishment"
    assert operation["status"] in {"pending", "succeeded"}
    assert operation["amount"] == "25.00" and operation["currency"] == "USD"
    assert operation["wallet_id"] == wallet
    assert operation["from_wallet_id"] is None and operation["to_wallet_id"] is None
    assert operation["reference"] == "top-up 42"
    assert operation["batch_id"] is None and operation["error"] is None

    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert final["transaction_id"] is not None
    assert final["completed_at"] is not None
    assert api.balance(wallet) == Decimal("25.00")
    [posting] = api.postings(wallet)
    assert posting["operation_id"] == operation["id"]
    assert posting["transaction_id"] == final["transaction_id"]
    assert posting["type"] == "replenishment"
    assert posting["amount"] == "25.00" and posting["balance_after"] == "25.00"


def test_transfer_moves_money_and_writes_both_postings(api: Api) -> None:
    source = api.funded_wallet("30.00")
    destination = api.create_wallet()
    response = api.transfer(source, destination, "12.34", reference="rent")
    assert response.status_code == 202
    operation = response.json()
    assert operation["type"] == "transfer"
    assert operation["from_wallet_id"] == source and operation["to_wallet_id"] == destination
    assert operation["wallet_id"] is None
    final = api.wait(operation["id"])
    assert final["status"] == "succeeded"
    assert api.balance(source) == Decimal("17.66")
    assert api.balance(destination) == Decimal("12.34")
    debit = api.postings(source)[0]
    credit = api.postings(destination)[0]
    assert debit["amount"] == "-12.34" and debit["balance_after"] == "17.66"
    assert credit["amount"] == "12.34" and credit["balance_after"] == "12.34"
    assert debit["transaction_id"] == credit["transaction_id"] == final["transaction_id"]
    assert debit["type"] == credit["type"] == "transfer"


def test_insufficient_funds_fails_and_moves_nothing(
    api: Api, db: psycopg2.extensions.connection
) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    postings_before = api.postings(source)
    response = api.transfer(source, destination, "10.01")
    final = api.wait(response.json()["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "insufficient_funds"
    assert final["error"]["message"]
    assert final["transaction_id"] is None
    assert final["completed_at"] is not None
    assert api.balance(source) == Decimal("10.00")
    assert api.balance(destination) == Decimal("0.00")
    assert api.postings(source) == postings_before
    assert api.postings(destination) == []
    assert query(db, "SELECT count(*) FROM transaction WHERE operation_id = %s", final["id"]) == [
        (0,)
    ]
    # Exactly the balance is enough.
    exact = api.wait(api.transfer(source, destination, "10.00").json()["id"])
    assert exact["status"] == "succeeded"
    assert api.balance(source) == Decimal("0.00")


def test_transfer_to_the_same_wallet_is_refused(api: Api) -> None:
    wallet = api.funded_wallet("5.00")
    assert_problem(api.transfer(wallet, wallet, "1.00"), 422, "same_wallet")


def test_transfer_naming_unknown_wallets_is_404(api: Api) -> None:
    wallet = api.funded_wallet("5.00")
    unknown = "01a21281-e4e0-78de-ae4e-9f66091ef99e"
    assert_problem(api.transfer(wallet, unknown, "1.00"), 404, "not_found")
    assert_problem(api.transfer(unknown, wallet, "1.00"), 404, "not_found")
    assert_problem(api.replenish(unknown, "1.00"), 404, "not_found")
    assert api.balance(wallet) == Decimal("5.00")


def test_unknown_operation_is_404(api: Api) -> None:
    response = api.get("/v1/operations/01a21281-e4e0-78de-ae4e-9f66091ef99e")
    assert_problem(response, 404, "not_found")
    response = api.get("/v1/operations/01a21281-e4e0-78de-ae4e-9f66091ef99e", params={"wait": 1})
    assert_problem(response, 404, "not_found")


def test_long_poll_times_out_pending_then_returns_as_soon_as_final(
    api: Api, database_url: str
) -> None:
    wallet = api.create_wallet()
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_wallet_queue, args=(database_url, wallet, release, held))
    holder.start()
    try:
        assert held.wait(10)
        operation = api.replenish(wallet, "1.00").json()
        started = time.monotonic()
        response = api.get(f"/v1/operations/{operation['id']}", params={"wait": 1.5})
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["status"] == "pending"
        assert 1.4 <= elapsed < 5

        # wait=0 answers at once.
        started = time.monotonic()
        assert (
            api.get(f"/v1/operations/{operation['id']}", params={"wait": 0}).json()["status"]
            == "pending"
        )
        assert time.monotonic() - started < 1

        # Release the wallet while a long poll is waiting: it answers once applied,
        # well before its 20 s are up (the sweeper re-dispatches within ~1.5 s).
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        response = api.get(f"/v1/operations/{operation['id']}", params={"wait": 20})
        elapsed = time.monotonic() - started
        assert response.json()["status"] == "succeeded"
        assert elapsed < 10
    finally:
        release.set()
        holder.join()


def test_long_poll_on_a_final_operation_answers_immediately(api: Api) -> None:
    wallet = api.funded_wallet("1.00")
    operation_id = api.postings(wallet)[0]["operation_id"]
    started = time.monotonic()
    response = api.get(f"/v1/operations/{operation_id}", params={"wait": 30})
    assert response.json()["status"] == "succeeded"
    assert time.monotonic() - started < 1


def test_amounts_are_exact_cents(api: Api) -> None:
    wallet = api.create_wallet()
    for amount in ["0.10", "0.20", 0.7, "1", 10, "999999999.99"]:
        op = api.replenish(wallet, amount).json()  # type: ignore[arg-type]
        assert re.fullmatch(r"\d+\.\d\d", op["amount"])
        assert api.wait(op["id"])["status"] == "succeeded"
    assert api.wallet(wallet)["balance"] == "1000000011.99"


def test_a_busy_wallet_at_the_head_does_not_hold_up_other_wallets(
    api: Api, database_url: str
) -> None:
    hot = api.create_wallet("hot")
    other = api.create_wallet("other")
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_wallet_queue, args=(database_url, hot, release, held))
    holder.start()
    try:
        assert held.wait(10)
        # A backlog longer than a drain looks at, all on a wallet some drain is busy with.
        backlog = api.post(
            "/v1/replenishment-batches",
            {"items": [{"wallet_id": hot, "amount": "0.01"}] * 5000},
            key=f"backlog-{time.time_ns()}",
        )
        assert backlog.status_code == 202
        started = time.monotonic()
        operation = api.replenish(other, "1.00").json()
        assert api.wait(operation["id"], timeout=10)["status"] == "succeeded"
        assert time.monotonic() - started < 5
        assert (
            api.get(f"/v1/replenishment-batches/{backlog.json()['id']}").json()["pending"] == 5000
        )
    finally:
        release.set()
        holder.join()


def test_lock_timeouts_say_which_lock(api: Api, database_url: str) -> None:
    """A duplicate of a request still in flight is 409; a busy wallet queue is 503."""
    wallet = api.create_wallet()
    tenant_key = new_key()
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT tenant_id FROM wallet WHERE id = %s", (wallet,))
            tenant = cur.fetchone()[0]  # type: ignore[index]
            # An uncommitted request holding the key ...
            cur.execute(
                "INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, "
                "resource_id, status_code) VALUES (%s, %s, '\\x00', 'operation', %s, 202)",
                (tenant, tenant_key, wallet),
            )
            in_use = api.replenish(wallet, "1.00", key=tenant_key)
            assert_problem(in_use, 409, "idempotency_key_in_use")
            cur.execute("ROLLBACK")
        with conn, conn.cursor() as cur:
            # ... and one holding the wallet's queue.
            cur.execute("SELECT 1 FROM wallet_sequence WHERE wallet_id = %s FOR UPDATE", (wallet,))
            busy = api.replenish(wallet, "1.00")
            body = assert_problem(busy, 503, "service_unavailable")
            assert "busy" in body["detail"]
    finally:
        conn.close()
    # Neither refusal used anything up.
    assert api.replenish(wallet, "1.00", key=tenant_key).status_code == 202


def test_every_applied_operation_is_announced_to_long_polls(api: Api) -> None:
    """Long polls are woken by the worker's announcements; a drain of any size announces
    every operation it applied (else polls would only see them on their 1 s re-read)."""
    import orjson
    import redis

    from shared.doorbell import completions_channel
    from shared.settings import get_settings

    settings = get_settings()
    client = redis.Redis.from_url(settings.require_redis_url())
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(completions_channel(settings))
    try:
        wallet = api.create_wallet()
        batch = api.post(
            "/v1/replenishment-batches",
            {"items": [{"wallet_id": wallet, "amount": "0.01"}] * 300},
            key=new_key(),
        ).json()
        single = api.replenish(wallet, "1.00").json()["id"]
        api.wait(single)
        operations = {p["operation_id"] for p in api.postings(wallet)}
        assert len(operations) == 301
        announced: set[str] = set()
        batches_announced: set[str] = set()
        deadline = time.monotonic() + 10
        while not operations <= announced and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                keys = orjson.loads(message["data"])
                announced |= {k[2:] for k in keys if k[:2] == "o:"}
                batches_announced |= {k[2:] for k in keys if k[:2] == "b:"}
        assert operations <= announced, f"{len(operations - announced)} never announced"
        assert batch["id"] in batches_announced
    finally:
        pubsub.close()
        client.close()
