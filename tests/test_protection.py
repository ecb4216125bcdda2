"""The service protects itself: a bounded backlog, bad keys that cost no database work,
bounded waits for a connection, capped long polls, /metrics that cannot be used to load
the database. Each test runs an API process of its own, with the setting it exercises,
beside the session's stack (same database, Redis and worker)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg2
import psycopg2.extensions
import pytest

from devtools.processes import free_port, wait_ready
from tests.conftest import Stack
from tests.helpers import Api, assert_problem, new_key
from tests.stack import Service


@contextmanager
def own_api(stack: Stack, tmp_path: Path, **settings: str) -> Iterator[str]:
    """A `paysys api` of its own with these PAYSYS_ settings; yields its base URL."""
    port = free_port()
    env = {**stack.env, "PAYSYS_API_PORT": str(port)}
    env.update({f"PAYSYS_{name.upper()}": value for name, value in settings.items()})
    service = Service(f"api-{port}", ["api"], env, tmp_path)
    service.start()
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url)
        yield base_url
    finally:
        service.stop()


@contextmanager
def locked(database_url: str, table: str) -> Iterator[None]:
    """`table` locked against every reader and writer, for as long as the block runs."""
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        conn.rollback()
        conn.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def unknown_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


# --- a bounded backlog ----------------------------------------------------------------


def test_a_stopped_worker_closes_intake_within_seconds_and_it_reopens(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    wallet = api.funded_wallet("100.00")
    other = api.create_wallet()
    with own_api(stack, tmp_path, max_backlog_seconds="2") as url:
        client = Api(url, api.api_key)
        stack.worker.stop()
        try:
            stopped = time.monotonic()
            accepted_key = new_key()
            first = client.transfer(wallet, other, "1.00", key=accepted_key)
            assert first.status_code == 202, first.text
            while True:  # keep submitting until the bound is crossed
                response = client.transfer(wallet, other, "1.00")
                if response.status_code == 503:
                    break
                assert response.status_code == 202, response.text
                assert time.monotonic() - stopped < 10, "never refused"
                time.sleep(0.2)
            refused_after = time.monotonic() - stopped
            body = assert_problem(response, 503, "overloaded")
            assert int(response.headers["Retry-After"]) >= 1
            assert "Retry-After" in body["detail"] or body["detail"]

            # Replays, reads and long polls go on; every kind of new work is refused.
            replay = client.transfer(wallet, other, "1.00", key=accepted_key)
            assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
            assert replay.json()["id"] == first.json()["id"]
            reused = client.transfer(wallet, other, "2.00", key=accepted_key)
            assert_problem(reused, 422, "idempotency_key_reused")
            assert client.get(f"/v1/wallets/{wallet}").status_code == 200
            polled = client.get(f"/v1/operations/{first.json()['id']}", params={"wait": 0.5})
            assert polled.status_code == 200 and polled.json()["status"] == "pending"
            assert_problem(client.replenish(wallet, "1.00"), 503, "overloaded")
            batch = client.post(
                "/v1/replenishment-batches",
                {"items": [{"wallet_id": wallet, "amount": "1.00"}]},
                key=new_key(),
            )
            assert_problem(batch, 503, "overloaded")
            assert client.post("/v1/accounts", {"name": "still fine"}).status_code == 201
        finally:
            stack.worker.start()
            stack.worker.wait_for_log("ready.", timeout=60)
        restarted = time.monotonic()
        assert api.wait(first.json()["id"])["status"] == "succeeded"
        while client.transfer(wallet, other, "1.00").status_code == 503:
            assert time.monotonic() - restarted < 15, "intake never reopened"
            time.sleep(0.2)
        reopened_after = time.monotonic() - restarted
        print(
            f"\nfirst 503 overloaded {refused_after:.2f} s after the worker stopped (bound 2 s); "
            f"accepting again {reopened_after:.2f} s after it was back"
        )
        assert refused_after < 6
        client.close()


# --- clients who are not users --------------------------------------------------------


def test_an_unknown_key_sent_again_costs_no_database_work(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    key = unknown_key()
    with own_api(stack, tmp_path, db_pool_timeout="1") as url:
        first = httpx.get(f"{url}/v1/accounts", headers=bearer(key), timeout=10)
        assert_problem(first, 401, "unauthorized")
        # With the keys' table locked, any lookup would wait (and end in a 503).
        with locked(database_url, "api_key"):
            started = time.monotonic()
            for _ in range(5):
                again = httpx.get(f"{url}/v1/accounts", headers=bearer(key), timeout=10)
                assert_problem(again, 401, "unauthorized")
            assert time.monotonic() - started < 1
            fresh = httpx.get(f"{url}/v1/accounts", headers=bearer(unknown_key()), timeout=10)
            assert_problem(fresh, 503, "service_unavailable")  # a new key is looked up


def test_an_address_over_its_failure_limit_gets_429_while_valid_keys_go_on(
    stack: Stack, api: Api, database_url: str, tmp_path: Path
) -> None:
    with own_api(stack, tmp_path, auth_failure_limit="5/minute") as url:
        good = httpx.get(f"{url}/v1/accounts", headers=bearer(api.api_key), timeout=10)
        assert good.status_code == 200
        statuses = [
            httpx.get(f"{url}/v1/accounts", headers=bearer(unknown_key()), timeout=10).status_code
            for _ in range(5)
        ]
        assert statuses == [401] * 5
        with locked(database_url, "api_key"):  # from here, no lookup would answer
            refused = httpx.get(f"{url}/v1/accounts", headers=bearer(unknown_key()), timeout=10)
            body = assert_problem(refused, 429, "rate_limited")
            assert int(refused.headers["Retry-After"]) >= 1
            assert "failed authentications" in body["detail"]
            missing = httpx.get(f"{url}/v1/accounts", timeout=10)
            assert_problem(missing, 429, "rate_limited")
            # A forwarded address is not believed from a proxy nobody trusted.
            forwarded = httpx.get(
                f"{url}/v1/accounts",
                headers={**bearer(unknown_key()), "X-Forwarded-For": "203.0.113.9"},
                timeout=10,
            )
            assert_problem(forwarded, 429, "rate_limited")
        # The valid key from the same address goes on, looked up or not.
        for _ in range(3):
            assert (
                httpx.get(f"{url}/v1/accounts", headers=bearer(api.api_key), timeout=10)
            ).status_code == 200
            time.sleep(0.1)


def test_forwarded_addresses_count_only_from_trusted_proxies(
    stack: Stack, api: Api, tmp_path: Path
) -> None:
    with own_api(
        stack, tmp_path, auth_failure_limit="3/minute", trusted_proxies="127.0.0.1"
    ) as url:

        def attempt(address: str) -> int:
            return httpx.get(
                f"{url}/v1/accounts",
                headers={**bearer(unknown_key()), "X-Forwarded-For": address},
                timeout=10,
            ).status_code

        assert [attempt("198.51.100.1") for _ in range(4)] == [401, 401, 401, 429]
        assert attempt("198.51.100.2") == 401  # another client behind the same proxy


def test_waiting_for_a_database_connection_is_bounded(
    stack: Stack, api: Api, database_url: str, tmp_path: Path
) -> None:
    wallet = api.funded_wallet("10.00")
    operation = api.replenish(wallet, "1.00").json()["id"]
    api.wait(operation)
    with own_api(stack, tmp_path, db_pool_size="2", db_pool_timeout="1") as url:
        headers = bearer(api.api_key)
        assert httpx.get(f"{url}/v1/wallets/{wallet}", headers=headers, timeout=10).is_success

        async def requests() -> list[tuple[float, httpx.Response]]:
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

                async def one(path: str, params: dict[str, str]) -> tuple[float, httpx.Response]:
                    started = time.monotonic()
                    response = await client.get(path, params=params)
                    return time.monotonic() - started, response

                paths = [(f"/v1/operations/{operation}", {"wait": "5"})] * 4
                paths += [(f"/v1/wallets/{wallet}", {})] * 4
                return list(await asyncio.gather(*(one(p, q) for p, q in paths)))

        with locked(database_url, "wallet"), locked(database_url, "operation"):
            answers = asyncio.run(requests())
        for seconds, response in answers:
            assert_problem(response, 503, "service_unavailable")
            assert int(response.headers["Retry-After"]) >= 1
            assert seconds < 8  # a statement's lock wait (5 s) or the pool's (1 s)
        # The four long polls share one read, which holds one of the two connections;
        # another request holds the other; the three left wait for the pool, 1 s.
        assert sum(seconds < 3 for seconds, _ in answers) >= 3
        assert httpx.get(f"{url}/v1/wallets/{wallet}", headers=headers, timeout=10).is_success


def test_a_tenant_s_long_polls_are_capped(
    stack: Stack, api: Api, database_url: str, tmp_path: Path
) -> None:
    from tests.helpers import hold_wallet_queue

    wallet = api.create_wallet()
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=hold_wallet_queue, args=(database_url, wallet, release, held), daemon=True
    )
    holder.start()
    assert held.wait(10)
    try:
        operation = api.replenish(wallet, "1.00").json()["id"]
        with own_api(stack, tmp_path, long_poll_max_per_tenant="2") as url:

            async def polls() -> list[float]:
                async with httpx.AsyncClient(
                    base_url=url, headers=bearer(api.api_key), timeout=30
                ) as client:

                    async def poll() -> float:
                        started = time.monotonic()
                        response = await client.get(
                            f"/v1/operations/{operation}", params={"wait": "2"}
                        )
                        assert response.status_code == 200
                        assert response.json()["status"] == "pending"
                        return time.monotonic() - started

                    return list(await asyncio.gather(*(poll() for _ in range(5))))

            durations = sorted(asyncio.run(polls()))
        assert [d < 1 for d in durations] == [True, True, True, False, False], durations
    finally:
        release.set()
        holder.join()
    assert api.wait(operation)["status"] == "succeeded"


def test_metrics_read_the_database_at_most_once_a_second(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    with own_api(stack, tmp_path) as url:
        assert "paysys_operations_pending " in httpx.get(f"{url}/metrics", timeout=10).text
        with locked(database_url, "operation"):
            started = time.monotonic()
            texts = [httpx.get(f"{url}/metrics", timeout=10).text for _ in range(10)]
            elapsed = time.monotonic() - started
        assert elapsed < 1.0, elapsed  # none of them waited on the locked table
        assert all("paysys_operations_pending " in text for text in texts)


@pytest.mark.parametrize("kind", ["operation", "batch"])
def test_one_announcement_costs_one_read_for_every_waiter(kind: str) -> None:
    """Many long polls on one resource share their re-reads; a batch long poll asks the
    cheap question (any item pending?) on each wake-up, and counts only at the end."""
    import uuid

    import redis.asyncio as aioredis

    from api.hub import CompletionHub
    from api.keys import KeyCache
    from api.routes.common import long_poll
    from shared.settings import get_settings

    async def main() -> tuple[int, int, int]:
        hub = CompletionHub(aioredis.Redis(), get_settings(), KeyCache())
        tenant, key = uuid.uuid4(), f"x:{uuid.uuid4()}"
        reads = probes = 0
        final = False

        async def fetch() -> dict[str, bool]:
            nonlocal reads
            reads += 1
            await asyncio.sleep(0.05)
            return {"final": final}

        async def pending() -> bool:
            nonlocal probes
            probes += 1
            await asyncio.sleep(0.05)
            return not final

        polls = [
            asyncio.create_task(
                long_poll(
                    hub,
                    tenant,
                    key,
                    5,
                    fetch,  # type: ignore[arg-type]
                    lambda row: bool(row["final"]),
                    pending if kind == "batch" else None,
                )
            )
            for _ in range(50)
        ]
        await asyncio.sleep(0.2)
        first_reads = reads
        for _ in range(3):  # three announcements of progress
            hub._notify([key])
            await asyncio.sleep(0.15)
        final = True
        hub._notify([key])
        rows = await asyncio.gather(*polls)
        assert all(row is not None and row["final"] for row in rows)
        return first_reads, reads, probes

    first_reads, reads, probes = asyncio.run(main())
    assert first_reads == 1
    if kind == "operation":
        assert reads == 1 + 4  # one read per announcement, not one per waiter
    else:
        assert probes == 4 and reads == 1 + 1  # the count once at the start, once at the end
