"""/metrics: Prometheus text with the series operators need, moving as operations run."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from tests.conftest import Stack
from tests.helpers import Api


def scrape(stack: Stack) -> dict[str, float]:
    response = httpx.get(f"{stack.base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def value(values: dict[str, float], pattern: str) -> float:
    """Sum of the series whose name-and-labels match `pattern`."""
    return sum(v for k, v in values.items() if re.fullmatch(pattern, k))


def test_metrics_move_when_operations_run(stack: Stack, api: Api) -> None:
    before = scrape(stack)
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    ok = api.transfer(source, destination, "4.00").json()["id"]
    refused = api.transfer(source, destination, "100.00").json()["id"]
    api.wait(ok)
    api.wait(refused)
    time.sleep(0.2)
    after = scrape(stack)

    def moved(pattern: str) -> float:
        return value(after, pattern) - value(before, pattern)

    assert moved(r'paysys_operations_accepted_total\{type="transfer"\}') == 2
    assert moved(r'paysys_operations_accepted_total\{type="replenishment"\}') == 1
    # Applied in the worker's processes, counted by the API's /metrics all the same.
    assert moved(r'paysys_operations_completed_total\{status="succeeded",type="transfer"\}') >= 1
    assert moved(r'paysys_operations_completed_total\{status="failed",type="transfer"\}') >= 1
    assert moved(r"paysys_accept_to_final_seconds_count") >= 3
    assert moved(r"paysys_drain_seconds_count") >= 1
    assert (
        moved(
            r'paysys_http_requests_total\{method="POST",'
            r'route="/v1/transfers",status="202"\}'
        )
        == 2
    )
    assert (
        moved(
            r'paysys_http_request_seconds_count\{method="GET",'
            r'route="/v1/operations/\{operation_id\}"\}'
        )
        >= 2
    )
    assert "paysys_operations_pending" in after
    assert "paysys_oldest_pending_seconds" in after
    assert "paysys_sweeper_redispatches_total" in after


def test_backlog_gauges_see_pending_work(stack: Stack, api: Api, database_url: str) -> None:
    import threading

    from tests.helpers import hold_wallet_queue

    wallet = api.create_wallet()
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_wallet_queue, args=(database_url, wallet, release, held))
    holder.start()
    try:
        assert held.wait(10)
        for _ in range(3):
            api.replenish(wallet, "1.00")
        time.sleep(1.2)
        during = scrape(stack)
        assert during["paysys_operations_pending"] >= 3
        assert during["paysys_oldest_pending_seconds"] >= 1
        # Held back, the operations get re-dispatched by the sweeper, and it counts so.
        deadline = time.monotonic() + 10
        while value(scrape(stack), "paysys_sweeper_redispatches_total") < 1:
            assert time.monotonic() < deadline, "no re-dispatch counted"
            time.sleep(0.2)
    finally:
        release.set()
        holder.join()


def test_a_standalone_worker_serves_its_metrics(stack: Stack, api: Api, tmp_path: Any) -> None:
    """A worker in a container of its own: its pool children's counters on its own port."""
    from devtools.processes import free_port, wait_ready
    from tests.stack import Service

    port, api_port = free_port(), free_port()
    env = {k: v for k, v in stack.env.items() if k != "PAYSYS_METRICS_DIR"}
    env.update(
        {
            "PAYSYS_REDIS_PREFIX": f"{env['PAYSYS_REDIS_PREFIX']}-alone",
            "PAYSYS_CELERY_QUEUE": f"{env['PAYSYS_CELERY_QUEUE']}-alone",
            "PAYSYS_WORKER_METRICS_PORT": str(port),
            "PAYSYS_API_PORT": str(api_port),
        }
    )
    worker = Service("alone-worker", ["worker"], env, tmp_path)
    front = Service("alone-api", ["api"], env, tmp_path)
    worker.start()
    front.start()
    try:
        wait_ready(f"http://127.0.0.1:{api_port}")
        worker.wait_for_log("ready.")
        client = Api(f"http://127.0.0.1:{api_port}", api.api_key)
        wallet = client.create_wallet()
        batch = client.post(
            "/v1/replenishment-batches",
            {"items": [{"wallet_id": wallet, "amount": "0.01"}] * 500},
            key=f"alone-{time.time_ns()}",
        ).json()
        while (
            client.get(f"/v1/replenishment-batches/{batch['id']}", params={"wait": 10}).json()[
                "status"
            ]
            != "completed"
        ):
            pass
        client.close()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        completed = sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("paysys_operations_completed_total")
        )
        assert completed > 0
        assert "paysys_drain_seconds_bucket" in text
    finally:
        front.stop()
        worker.stop()
