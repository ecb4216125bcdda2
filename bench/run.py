"""The paysys benchmark: throughput and latency of the whole system, against pgbench.

    python -m bench.run                       # starts `paysys run` on a fresh database
    python -m bench.run --url URL --api-key K # a paysys already running (no RSS/scaling)

In one run, on one machine: pgbench's TPC-B (scale 10, 16 clients, 15 s) as the yardstick,
then, each after a warm-up, the workloads

* uniform: random transfers among 10,000 funded wallets;
* hot source: one wallet sending to many;
* hot destination: many wallets sending to one;
* mixed: transfers, replenishments and status polls;

each on a database vacuumed and checkpointed just before, as pgbench vacuums before its run;

measuring intake requests/s and latency, applied operations/s (from /metrics: operations
completed per second while the load runs), accept-to-final latency at a fixed offered rate
of half the uniform maximum, peak memory of the API and worker processes (PSS: a forked
pool's shared pages counted once; the largest single RSS too), and how applied/s grows
with 1, 2 and 4 worker processes. Prints a table and writes bench/results/run.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import PaysysRun, pgbench_tps, pss_mb, rss_mb, write_results
from bench.receiver import Receiver
from shared.money import format_cents

WALLETS = 10_000
CLIENTS = 48


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class MemorySampler:
    """Peak memory of the API and worker processes: total PSS, and largest single RSS."""

    def __init__(self, run: PaysysRun | None):
        self.run = run
        self.peak = {"api": 0.0, "worker": 0.0}
        self.peak_rss = {"api": 0.0, "worker": 0.0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            if self.run is None:
                return
            for role in self.peak:
                pids = self.run.pids(role)
                self.peak[role] = max(self.peak[role], pss_mb(pids))
                self.peak_rss[role] = max(self.peak_rss[role], rss_mb(pids))

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class Stats:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)


class Client:
    def __init__(self, url: str, api_key: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self.session = aiohttp.ClientSession(
            self.url,
            headers=self.headers,
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def post(self, path: str, body: Any, key: str | None = None) -> tuple[int, Any]:
        assert self.session is not None
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        async with self.session.post(path, json=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.get(path, params=params or None) as response:
            return response.status, await response.json(content_type=None)

    async def metric(self, name: str) -> float:
        assert self.session is not None
        async with self.session.get("/metrics") as response:
            text = await response.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name):
                total += float(line.rpartition(" ")[2])
        return total

    async def completed(self) -> float:
        return await self.metric("paysys_operations_completed_total")

    async def drained(self, within: float = 300) -> None:
        deadline = time.monotonic() + within
        while await self.metric("paysys_operations_pending") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the backlog did not drain")
            await asyncio.sleep(0.2)


async def setup(client: Client, wallets: int) -> list[str]:
    semaphore = asyncio.Semaphore(32)

    async def account(i: int) -> str:
        async with semaphore:
            status, body = await client.post("/v1/accounts", {"name": f"bench {i}"})
            assert status == 201, body
            return str(body["wallet"]["id"])

    ids = list(await asyncio.gather(*(account(i) for i in range(wallets))))
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        status, batch = await client.post(
            "/v1/replenishment-batches",
            {"items": [{"wallet_id": w, "amount": "100000.00"} for w in chunk]},
        )
        assert status == 202, batch
        while batch["status"] != "completed":
            _, batch = await client.get(f"/v1/replenishment-batches/{batch['id']}", wait=30)
    return ids


Request = tuple[str, str, Any]  # method, path, body


def workload(
    kind: str, wallets: list[str], rng: random.Random, accepted: list[str] | None = None
) -> Request:
    hot = wallets[0]
    amount = format_cents(rng.randint(1, 100))
    if kind == "uniform":
        source, destination = rng.sample(wallets, 2)
    elif kind == "hot_source":
        source, destination = hot, rng.choice(wallets[1:])
    elif kind == "hot_destination":
        source, destination = rng.choice(wallets[1:]), hot
    else:  # mixed
        roll = rng.random()
        if roll < 0.2:
            return ("POST", f"/v1/wallets/{rng.choice(wallets)}/replenishments", {"amount": amount})
        if roll < 0.4 and accepted:  # a status poll of one of the latest operations
            return ("GET", f"/v1/operations/{rng.choice(accepted[-100:])}", None)
        source, destination = rng.sample(wallets, 2)
    return (
        "POST",
        "/v1/transfers",
        {"from_wallet_id": source, "to_wallet_id": destination, "amount": amount},
    )


async def closed_loop(
    client: Client, kind: str, wallets: list[str], seconds: float, clients: int = CLIENTS
) -> Stats:
    stats = Stats()
    stop_at = time.monotonic() + seconds
    rng = random.Random(kind)

    async def one() -> None:
        while time.monotonic() < stop_at:
            method, path, body = workload(kind, wallets, rng, stats.accepted)
            started = time.perf_counter()
            try:
                if method == "POST":
                    status, answer = await client.post(path, body)
                else:
                    status, answer = await client.get(path)
            except (aiohttp.ClientError, TimeoutError):
                stats.errors += 1
                continue
            stats.latencies.append(time.perf_counter() - started)
            stats.requests += 1
            if status not in (200, 202):
                stats.errors += 1
            elif status == 202:
                stats.accepted.append(answer["id"])

    await asyncio.gather(*(one() for _ in range(clients)))
    return stats


Settle = Callable[[], None]


async def run_workload(
    client: Client,
    kind: str,
    wallets: list[str],
    warmup: float,
    seconds: float,
    settle: Settle | None = None,
) -> dict[str, Any]:
    await client.drained()
    if settle is not None:
        await asyncio.to_thread(settle)
    await closed_loop(client, kind, wallets, warmup)
    await client.drained()
    before = await client.completed()
    started = time.monotonic()
    stats = await closed_loop(client, kind, wallets, seconds)
    elapsed = time.monotonic() - started
    applied_during = await client.completed() - before
    await client.drained()
    # Applied/s: operations applied while the load ran, or all of its operations if the
    # worker was still catching up when the clients stopped (then over the longer time).
    all_applied = await client.completed() - before
    finished = time.monotonic() - started
    applied_per_s = max(applied_during / elapsed, all_applied / finished)
    return {
        "requests_per_s": round(stats.requests / elapsed, 1),
        "intake_p50_ms": round(1000 * percentile(stats.latencies, 50), 1),
        "intake_p99_ms": round(1000 * percentile(stats.latencies, 99), 1),
        "errors": stats.errors,
        "applied_per_s": round(applied_per_s, 1),
    }


def _histogram(text: str, name: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = float(line.split('le="')[1].split('"')[0])
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rpartition(" ")[2])
    return buckets


def _quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the histogram bucket holding quantile q of what was observed between
    two scrapes."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    bounds = sorted(counts)
    total = counts[bounds[-1]] if bounds else 0
    for bound in bounds:
        if total and counts[bound] >= q * total:
            return bound
    return float("nan")


async def fixed_rate(
    client: Client, wallets: list[str], rate: float, seconds: float, sample: int = 10
) -> dict[str, Any]:
    """Open loop at `rate` transfers/s. Intake latency of every request; accept-to-final
    of every `sample`-th one, long-polled until final (polling them all would double the
    API's load at the moment its latency is measured), and of all of them from the
    server's own histogram (acceptance to the worker's commit)."""
    rng = random.Random("fixed")
    intake: list[float] = []
    final: list[float] = []
    errors = 0
    tasks = []
    assert client.session is not None
    async with client.session.get("/metrics") as response:
        before = _histogram(await response.text(), "paysys_accept_to_final_seconds")

    async def one(poll: bool) -> None:
        nonlocal errors
        _, path, body = workload("uniform", wallets, rng)
        started = time.perf_counter()
        try:
            status, answer = await client.post(path, body)
            accepted = time.perf_counter()
            intake.append(accepted - started)
            if status != 202:
                errors += 1
                return
            while poll:
                status, operation = await client.get(f"/v1/operations/{answer['id']}", wait=10)
                if operation["status"] != "pending":
                    final.append(time.perf_counter() - accepted)
                    return
        except (aiohttp.ClientError, TimeoutError):
            errors += 1

    interval = 1 / rate
    begin = time.perf_counter()
    n = 0
    while time.perf_counter() - begin < seconds:
        tasks.append(asyncio.create_task(one(n % sample == 0)))
        n += 1
        delay = begin + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*tasks)
    await client.drained()
    async with client.session.get("/metrics") as response:
        after = _histogram(await response.text(), "paysys_accept_to_final_seconds")
    return {
        "offered_per_s": round(rate, 1),
        "intake_p50_ms": round(1000 * percentile(intake, 50), 1),
        "intake_p99_ms": round(1000 * percentile(intake, 99), 1),
        "accept_to_final_p50_ms": round(1000 * percentile(final, 50), 1),
        "accept_to_final_p99_ms": round(1000 * percentile(final, 99), 1),
        "server_accept_to_final_p50_ms_at_most": 1000 * _quantile(before, after, 0.5),
        "server_accept_to_final_p99_ms_at_most": 1000 * _quantile(before, after, 0.99),
        "errors": errors,
    }


async def subscribe(client: Client, webhook_url: str | None) -> None:
    """Events on: one webhook endpoint subscribed to every event."""
    if webhook_url is not None:
        status, body = await client.post(
            "/v1/webhook-endpoints", {"url": webhook_url, "event_types": ["*"]}
        )
        assert status == 201, body


async def measure(
    url: str,
    api_key: str,
    quick: bool,
    settle: Settle | None = None,
    webhook_url: str | None = None,
) -> dict[str, Any]:
    warmup, seconds = (2, 5) if quick else (4, 12)
    async with Client(url, api_key) as client:
        started = time.monotonic()
        await subscribe(client, webhook_url)
        wallets = await setup(client, 2_000 if quick else WALLETS)
        results: dict[str, Any] = {"setup_seconds": round(time.monotonic() - started, 1)}
        results["uniform"] = await run_workload(client, "uniform", wallets, warmup, seconds, settle)
        # Latency at half the maximum just measured, before other workloads load the
        # database with work for autovacuum.
        uniform = results["uniform"]
        half = 0.5 * min(uniform["applied_per_s"], uniform["requests_per_s"])
        await client.drained()
        if settle is not None:
            await asyncio.to_thread(settle)
        await fixed_rate(client, wallets, half, warmup)
        await client.drained()
        results["half_max_latency"] = await fixed_rate(client, wallets, half, seconds)
        for kind in ("hot_source", "hot_destination", "mixed"):
            results[kind] = await run_workload(client, kind, wallets, warmup, seconds, settle)
    return results


async def scaling(run_args: tuple[str, str], quick: bool) -> dict[str, float]:
    out = {}
    for processes in (1, 2, 4):
        run = PaysysRun(*run_args, concurrency=processes)
        try:
            key = run.start()
            async with Client(run.url, key) as client:
                wallets = await setup(client, 2_000)
                result = await run_workload(
                    client, "uniform", wallets, 2, 4 if quick else 8, run.settle
                )
            out[str(processes)] = result["applied_per_s"]
        finally:
            run.stop()
    return out


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    tps = results["pgbench_tpcb_tps"]
    uniform = results["uniform"]["applied_per_s"]
    rows = [
        (
            "uniform applied/s >= 0.2 x pgbench",
            f"{uniform:.0f} vs {0.2 * tps:.0f}",
            uniform >= 0.2 * tps,
        ),
    ]
    for kind in ("hot_source", "hot_destination"):
        value = results[kind]["applied_per_s"]
        rows.append(
            (
                f"{kind} >= 0.8 x uniform",
                f"{value:.0f} vs {0.8 * uniform:.0f}",
                value >= 0.8 * uniform,
            )
        )
    half = results["half_max_latency"]
    rows += [
        (
            "accept-to-final p50 <= 50 ms",
            f"{half['accept_to_final_p50_ms']} ms",
            half["accept_to_final_p50_ms"] <= 50,
        ),
        (
            "accept-to-final p99 <= 250 ms",
            f"{half['accept_to_final_p99_ms']} ms",
            half["accept_to_final_p99_ms"] <= 250,
        ),
        (
            "intake p99 <= 50 ms (half max)",
            f"{half['intake_p99_ms']} ms",
            half["intake_p99_ms"] <= 50,
        ),
    ]
    if "memory_mb" in results:
        for role in ("api", "worker"):
            value = results["memory_mb"][role]
            rows.append((f"{role} memory (PSS) <= 250 MB", f"{value:.0f} MB", value <= 250))
    return rows


def report(results: dict[str, Any]) -> None:
    tps = results["pgbench_tpcb_tps"]
    print(f"\npgbench TPC-B (scale 10, 16 clients, 15 s): {tps:.0f} tps\n")
    print(
        f"{'workload':16} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'applied/s':>10} "
        f"{'x pgbench':>9}"
    )
    for kind in ("uniform", "hot_source", "hot_destination", "mixed"):
        r = results[kind]
        print(
            f"{kind:16} {r['requests_per_s']:>8} {r['intake_p50_ms']:>7} "
            f"{r['intake_p99_ms']:>7} {r['applied_per_s']:>10} "
            f"{r['applied_per_s'] / tps:>9.2f}"
        )
    half = results["half_max_latency"]
    print(
        f"\nat {half['offered_per_s']}/s (half the uniform maximum): intake p50/p99 "
        f"{half['intake_p50_ms']}/{half['intake_p99_ms']} ms; accept-to-final p50/p99 "
        f"{half['accept_to_final_p50_ms']}/{half['accept_to_final_p99_ms']} ms "
        f"(long-polled sample), <= {half['server_accept_to_final_p50_ms_at_most']:.0f}/"
        f"{half['server_accept_to_final_p99_ms_at_most']:.0f} ms (server histogram)"
    )
    if "memory_mb" in results:
        memory, rss = results["memory_mb"], results["largest_process_rss_mb"]
        print(
            f"peak memory (PSS, all processes): API {memory['api']:.0f} MB, worker "
            f"{memory['worker']:.0f} MB; largest single RSS: API {rss['api']:.0f} MB, "
            f"worker {rss['worker']:.0f} MB"
        )
    if "scaling" in results:
        print(
            "applied/s by worker processes: "
            + ", ".join(f"{k}: {v:.0f}" for k, v in results["scaling"].items())
        )
    print("\ntargets:")
    for name, value, ok in targets(results):
        print(f"  {'PASS' if ok else 'MISS'}  {name:36} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running paysys (default: start `paysys run`)")
    parser.add_argument("--api-key")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer wallets")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument(
        "--no-webhook",
        action="store_true",
        help="events off: no webhook endpoint (by default one, subscribed to everything, "
        "delivers to a receiver on this machine)",
    )
    args = parser.parse_args()
    admin_url = os.environ.get(
        "PAYSYS_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    results: dict[str, Any] = {"pgbench_tpcb_tps": round(pgbench_tps(admin_url), 1)}
    receiver = None if args.no_webhook else Receiver().__enter__()
    hook = None if receiver is None else receiver.url
    if args.url:
        if not args.api_key:
            parser.error("--api-key is required with --url")
        results.update(asyncio.run(measure(args.url, args.api_key, args.quick, None, hook)))
    else:
        run = PaysysRun(admin_url, redis_url, allow_private_webhooks=hook is not None)
        try:
            key = run.start()
            with MemorySampler(run) as memory:
                results.update(asyncio.run(measure(run.url, key, args.quick, run.settle, hook)))
            if receiver is not None:
                results["webhook_deliveries"] = receiver.stats()
            results["memory_mb"] = {k: round(v, 1) for k, v in memory.peak.items()}
            results["largest_process_rss_mb"] = {k: round(v, 1) for k, v in memory.peak_rss.items()}
        finally:
            run.stop()
        if not args.no_scaling:
            results["scaling"] = asyncio.run(scaling((admin_url, redis_url), args.quick))
    if receiver is not None:
        receiver.__exit__(None, None, None)
    results["targets"] = [
        {"target": name, "measured": value, "met": ok} for name, value, ok in targets(results)
    ]
    path = write_results("run", results)
    report(results)
    print(f"\n(written to {path}; reproduce with `make bench`)")
    json.dumps(results)


if __name__ == "__main__":
    main()
