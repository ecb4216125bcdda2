from __future__ import annotations

import signal
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg2.extensions

from tests.conftest import Stack, query
from tests.helpers import Api, assert_problem, new_key

Conn = psycopg2.extensions.connection


def submit(api: Api, items: list[dict[str, Any]], key: str | None = None) -> Any:
    return api.post("/v1/replenishment-batches", {"items": items}, key=key or new_key())


def wait_batch(api: Api, batch_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/v1/replenishment-batches/{batch_id}", params={"wait": 10})
        assert response.status_code == 200, response.text
        batch = dict(response.json())
        if batch["status"] == "completed":
            return batch
    raise AssertionError(f"batch {batch_id} not completed after {timeout}s")


def batch_operations(api: Api, batch_id: str, limit: int = 200) -> list[dict[str, Any]]:
    return api.pages(f"/v1/replenishment-batches/{batch_id}/operations", limit)


def test_ten_thousand_items_complete_with_exact_counts_and_balances(api: Api, db: Conn) -> None:
    wallets = [api.create_wallet(f"B{i}") for i in range(200)]
    items = [
        {
            "wallet_id": wallets[i % 200],
            "amount": f"{1 + i % 97}.{i % 100:02d}",
            "reference": f"line {i}",
        }
        for i in range(10_000)
    ]
    expected: dict[str, Decimal] = {w: Decimal(0) for w in wallets}
    for item in items:
        expected[item["wallet_id"]] += Decimal(item["amount"])

    started = time.monotonic()
    response = submit(api, items)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert response.headers["location"] == f"/v1/replenishment-batches/{batch['id']}"
    assert batch["total"] == 10_000
    assert batch["pending"] + batch["succeeded"] + batch["failed"] == 10_000
    assert batch["status"] in {"pending", "completed"}

    # Counts are exact at every moment: they always add up, and pending only falls.
    seen_pending = [batch["pending"]]
    while True:
        current = api.get(f"/v1/replenishment-batches/{batch['id']}").json()
        assert current["pending"] + current["succeeded"] + current["failed"] == 10_000
        assert current["pending"] <= seen_pending[-1]
        seen_pending.append(current["pending"])
        if current["status"] == "completed":
            break
        assert time.monotonic() - started < 120
        time.sleep(0.05)
    final = wait_batch(api, batch["id"])
    assert final == {**final, "pending": 0, "succeeded": 10_000, "failed": 0}
    assert final["completed_at"] is not None

    for wallet in wallets:
        assert api.balance(wallet) == expected[wallet]
    operations = batch_operations(api, batch["id"])
    assert [o["reference"] for o in operations] == [f"line {i}" for i in range(10_000)]
    assert all(
        o["batch_id"] == batch["id"] and o["type"] == "replenishment" and o["status"] == "succeeded"
        for o in operations
    )
    assert (
        query(
            db,
            "SELECT count(*) FROM transaction t JOIN operation o ON o.id = t.operation_id "
            "WHERE o.batch_id = %s",
            batch["id"],
        )[0][0]
        == 10_000
    )


def test_bad_items_are_named_and_nothing_is_created(api: Api, db: Conn) -> None:
    wallet = api.create_wallet()
    unknown = str(uuid.uuid4())
    items: list[dict[str, Any]] = [{"wallet_id": wallet, "amount": "1.00"} for _ in range(10)]
    items[2] = {"wallet_id": wallet, "amount": "0"}
    items[5] = {"wallet_id": unknown, "amount": "1.00"}
    items[7] = {"wallet_id": "not-a-uuid", "amount": "1.00"}
    items[8] = {"wallet_id": wallet, "amount": "1.00", "currency": "EUR"}
    key = new_key()
    # Every bad item in one answer: malformed, unknown wallet and unsupported currency.
    body = assert_problem(submit(api, items, key), 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [
        ["body", "items", 2, "amount"],
        ["body", "items", 5, "wallet_id"],
        ["body", "items", 7, "wallet_id"],
        ["body", "items", 8, "currency"],
    ]
    assert unknown in body["errors"][1]["msg"]

    items[2] = items[7] = {"wallet_id": wallet, "amount": "1.00"}
    body = assert_problem(submit(api, items, key), 422, "validation_error")
    assert [e["loc"] for e in body["errors"]] == [
        ["body", "items", 5, "wallet_id"],
        ["body", "items", 8, "currency"],
    ]

    items[5] = {"wallet_id": wallet, "amount": "1.00"}
    body = assert_problem(submit(api, items, key), 422, "unsupported_currency")
    assert [e["loc"] for e in body["errors"]] == [["body", "items", 8, "currency"]]
    items[8] = {"wallet_id": wallet, "amount": "1.00"}

    tenant = query(db, "SELECT tenant_id FROM wallet WHERE id = %s", wallet)[0][0]
    assert query(db, "SELECT count(*) FROM replenishment_batch WHERE tenant_id = %s", tenant) == [
        (0,)
    ]
    assert query(db, "SELECT count(*) FROM operation WHERE tenant_id = %s", tenant) == [(0,)]
    # The key was not used up by the refusals.
    accepted = submit(api, items, key)
    assert accepted.status_code == 202
    assert "Idempotent-Replayed" not in accepted.headers
    assert wait_batch(api, accepted.json()["id"])["succeeded"] == 10
    assert api.balance(wallet) == Decimal("10.00")


def test_batch_size_limits(api: Api) -> None:
    wallet = api.create_wallet()
    assert_problem(submit(api, []), 422, "validation_error")
    too_many = [{"wallet_id": wallet, "amount": "0.01"}] * 10_001
    assert_problem(submit(api, too_many), 422, "validation_error")
    assert_problem(
        api.post("/v1/replenishment-batches", {"items": [{"wallet_id": wallet, "amount": "1.00"}]}),
        400,
        "idempotency_key_required",
    )


def test_replaying_a_batch_key_returns_the_same_batch(api: Api) -> None:
    wallet = api.create_wallet()
    items = [{"wallet_id": wallet, "amount": "2.50"}] * 3
    key = new_key()
    first = submit(api, items, key)
    wait_batch(api, first.json()["id"])
    again = submit(api, items, key)
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "completed"
    assert api.balance(wallet) == Decimal("7.50")
    different = submit(api, [{"wallet_id": wallet, "amount": "2.51"}] * 3, key)
    assert_problem(different, 422, "idempotency_key_reused")


def test_validate_checks_without_accepting(api: Api, db: Conn) -> None:
    wallet = api.create_wallet()
    good = [{"wallet_id": wallet, "amount": "1.00"}]
    response = api.post("/v1/replenishment-batch-validations", {"items": good})
    assert response.status_code == 200
    assert response.json() == {"valid": True, "total": 1}
    bad = [*good, {"wallet_id": str(uuid.uuid4()), "amount": "1.00"}]
    body = assert_problem(
        api.post("/v1/replenishment-batch-validations", {"items": bad}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["loc"] == ["body", "items", 1, "wallet_id"]
    assert query(db, "SELECT count(*) FROM operation WHERE wallet_id = %s", wallet) == [(0,)]


def test_batch_items_keep_their_place_in_each_wallets_order(api: Api) -> None:
    wallet = api.create_wallet()
    other = api.create_wallet()
    first = api.replenish(wallet, "1.00").json()["id"]
    batch = submit(
        api,
        [
            {"wallet_id": wallet, "amount": "10.00"},
            {"wallet_id": other, "amount": "1.00"},
            {"wallet_id": wallet, "amount": "20.00"},
        ],
    ).json()
    # Submitted right after, not waiting: needs the batch's 31.00 to be applied first.
    spend = api.transfer(wallet, other, "31.00").json()["id"]
    assert api.wait(first)["status"] == "succeeded"
    assert api.wait(spend)["status"] == "succeeded"
    assert wait_batch(api, batch["id"])["succeeded"] == 3
    amounts = [p["amount"] for p in api.postings(wallet)[::-1]]
    assert amounts == ["1.00", "10.00", "20.00", "-31.00"]


def test_other_tenants_cannot_see_a_batch(api: Api, other_api: Api) -> None:
    wallet = api.create_wallet()
    batch = submit(api, [{"wallet_id": wallet, "amount": "1.00"}]).json()
    for path in (
        f"/v1/replenishment-batches/{batch['id']}",
        f"/v1/replenishment-batches/{batch['id']}/operations",
    ):
        assert_problem(other_api.get(path), 404, "not_found")
    assert_problem(
        other_api.get(f"/v1/replenishment-batches/{batch['id']}", params={"wait": 1}),
        404,
        "not_found",
    )
    # Nor put items into another tenant's wallet.
    body = assert_problem(
        submit(other_api, [{"wallet_id": wallet, "amount": "1.00"}]), 422, "validation_error"
    )
    assert body["errors"][0]["loc"] == ["body", "items", 0, "wallet_id"]


def test_worker_killed_mid_batch_applies_every_item_exactly_once(
    stack: Stack, api: Api, db: Conn
) -> None:
    wallets = [api.create_wallet(f"K{i}") for i in range(100)]
    batches = []
    for n in range(3):
        items = [{"wallet_id": wallets[i % 100], "amount": "1.01"} for i in range(10_000)]
        batches.append(submit(api, items, key=f"kill-{n}-{uuid.uuid4()}").json()["id"])
    # Kill the worker (main process and pool) while it is applying them, twice.
    for _ in range(2):
        deadline = time.monotonic() + 60
        while (
            query(
                db,
                "SELECT count(*) FROM operation WHERE batch_id = ANY(%s::uuid[]) "
                "AND status <> 'pending'",
                batches,
            )[0][0]
            == 0
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stack.worker.signal_group(signal.SIGKILL)
        assert stack.worker.proc is not None
        stack.worker.proc.wait()
        stack.worker.start()
        stack.worker.wait_for_log("ready.", timeout=60)
        time.sleep(0.3)
    results = [wait_batch(api, batch_id, timeout=180) for batch_id in batches]
    assert [r["succeeded"] for r in results] == [10_000] * 3
    assert query(
        db,
        "SELECT count(*), count(DISTINCT t.operation_id) FROM transaction t "
        "JOIN operation o ON o.id = t.operation_id WHERE o.batch_id = ANY(%s::uuid[])",
        batches,
    ) == [(30_000, 30_000)]
    for wallet in wallets:
        assert api.balance(wallet) == Decimal("303.00")  # 300 items of 1.01 each


def test_statement_pages_stay_exact_while_transfers_arrive(api: Api) -> None:
    source = api.funded_wallet("1000.00")
    wallet = api.funded_wallet("1000.00")
    for _ in range(30):
        api.transfer(wallet, source, "1.00")
    api.wait(api.transfer(wallet, source, "1.00").json()["id"])
    before = {p["id"] for p in api.postings(wallet)}
    stop = threading.Event()

    def keep_transferring() -> None:
        client = Api(api.base_url, api.api_key)
        while not stop.is_set():
            client.transfer(source, wallet, "0.01")
            client.transfer(wallet, source, "0.01")
        client.close()

    writer = threading.Thread(target=keep_transferring)
    writer.start()
    try:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = api.get(f"/v1/wallets/{wallet}/postings", params=params).json()
            seen += [p["id"] for p in page["items"]]
            cursor = page["next_cursor"]
            time.sleep(0.02)  # let postings arrive between pages
            if cursor is None:
                break
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen)), "a posting came twice"
    assert before <= set(seen), "a posting that existed at the start was missed"
