from __future__ import annotations

import asyncio

import httpx
import psycopg2.extensions

from tests.conftest import query
from tests.helpers import Api, assert_problem, new_key


def _operations_with_key(db: psycopg2.extensions.connection, key: str) -> int:
    return int(query(db, "SELECT count(*) FROM operation WHERE idempotency_key = %s", key)[0][0])


def test_replay_returns_the_same_operation_and_creates_nothing(
    api: Api, db: psycopg2.extensions.connection
) -> None:
    wallet = api.create_wallet()
    key = new_key()
    first = api.replenish(wallet, "10.50", key=key)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    api.wait(first.json()["id"])

    # Same content, written differently: the amount as a number, keys reordered,
    # the default currency spelled out.
    again = api.post(
        f"/v1/wallets/{wallet}/replenishments", {"currency": "USD", "amount": 10.5}, key=key
    )
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    replayed = again.json()
    assert replayed["id"] == first.json()["id"]
    # The resource as it is now, not as it was.
    assert replayed["status"] == "succeeded"
    assert _operations_with_key(db, key) == 1
    assert len(api.postings(wallet)) == 1


def test_same_key_with_another_request_is_refused(api: Api) -> None:
    wallet = api.create_wallet()
    other = api.create_wallet()
    key = new_key()
    assert api.replenish(wallet, "1.00", key=key).status_code == 202
    assert_problem(api.replenish(wallet, "2.00", key=key), 422, "idempotency_key_reused")
    assert_problem(api.replenish(other, "1.00", key=key), 422, "idempotency_key_reused")
    assert_problem(api.transfer(wallet, other, "1.00", key=key), 422, "idempotency_key_reused")
    assert_problem(
        api.replenish(wallet, "1.00", key=key, reference="changed"), 422, "idempotency_key_reused"
    )


def test_refused_request_does_not_use_up_its_key(api: Api) -> None:
    wallet = api.create_wallet()
    key = new_key()
    assert_problem(api.replenish(wallet, "0", key=key), 422, "validation_error")
    assert_problem(
        api.replenish("01a21281-e4e0-78de-ae4e-9f66091ef99e", "1.00", key=key), 404, "not_found"
    )
    accepted = api.replenish(wallet, "1.00", key=key)
    assert accepted.status_code == 202
    assert "Idempotent-Replayed" not in accepted.headers


def test_failed_operation_stays_failed_on_retry(api: Api) -> None:
    source = api.create_wallet()
    destination = api.create_wallet()
    key = new_key()
    failed = api.wait(api.transfer(source, destination, "5.00", key=key).json()["id"])
    assert failed["status"] == "failed"
    api.wait(api.replenish(source, "10.00").json()["id"])
    retry = api.transfer(source, destination, "5.00", key=key)
    assert retry.status_code == 202
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == failed["id"]
    assert retry.json()["status"] == "failed"
    assert api.wallet(source)["balance"] == "10.00"


def test_keys_are_scoped_per_tenant(
    api: Api, other_api: Api, db: psycopg2.extensions.connection
) -> None:
    key = new_key()
    mine = api.replenish(api.create_wallet(), "1.00", key=key)
    theirs = other_api.replenish(other_api.create_wallet(), "1.00", key=key)
    assert mine.status_code == theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert _operations_with_key(db, key) == 2


def test_twenty_concurrent_requests_with_one_key_make_one_operation(
    api: Api, db: psycopg2.extensions.connection
) -> None:
    source = api.funded_wallet("100.00")
    destination = api.create_wallet()
    key = new_key()
    body = {"from_wallet_id": source, "to_wallet_id": destination, "amount": "7.00"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {api.api_key}", "Idempotency-Key": key},
            timeout=30,
            limits=httpx.Limits(max_connections=20),
        ) as client:
            return await asyncio.gather(
                *(client.post("/v1/transfers", json=body) for _ in range(20))
            )

    responses = asyncio.run(fire())
    statuses = [r.status_code for r in responses]
    # A duplicate waits for the first request and replays it; 409 only if it waited
    # longer than the lock timeout, which this load never reaches.
    assert statuses == [202] * 20, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 19
    assert _operations_with_key(db, key) == 1
    assert api.wait(responses[0].json()["id"])["status"] == "succeeded"
    assert api.wallet(source)["balance"] == "93.00"
    assert api.wallet(destination)["balance"] == "7.00"


def test_key_must_be_printable_ascii(api: Api) -> None:
    wallet = api.create_wallet()
    for bad in [b"x" * 256, "caf\u00e9".encode(), b"tab\there"]:
        response = api.http.post(
            f"/v1/wallets/{wallet}/replenishments",
            json={"amount": "1.00"},
            headers=[(b"Idempotency-Key", bad)],
        )
        assert_problem(response, 422, "validation_error")
    assert api.replenish(wallet, "1.00", key="x" * 255).status_code == 202
    assert api.replenish(wallet, "1.00", key="a b ~!").status_code == 202
