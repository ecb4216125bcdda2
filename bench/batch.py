"""Bulk replenishment benchmark.

Submits ITEMS replenishments over WALLETS wallets in batches of BATCH items, and measures
items applied per second from the first submission to the last completion. In the same
run, on the same machine, it runs pgbench's TPC-B (scale 10, 16 clients, 15 s) and
reports the ratio.

    python -m bench.batch                      # starts a fresh local paysys
    python -m bench.batch --url URL --api-key KEY

With no --url it needs PostgreSQL and Redis (DATABASE_URL's server, REDIS_URL) and
creates, then drops, its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from typing import Any

import httpx

from bench.common import PaysysRun, pgbench_tps, write_results
from shared.money import format_cents


async def _make_wallets(client: httpx.AsyncClient, count: int) -> list[str]:
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        async with semaphore:
            response = await client.post("/v1/accounts", json={"name": f"bench {i}"})
            response.raise_for_status()
            return str(response.json()["wallet"]["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _run(url: str, api_key: str, items: int, wallets: int, batch: int) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=120
    ) as client:
        wallet_ids = await _make_wallets(client, wallets)
        rng = random.Random(1)
        chunks = [
            [
                {
                    "wallet_id": rng.choice(wallet_ids),
                    "amount": format_cents(rng.randint(1, 10000)),
                }
                for _ in range(min(batch, items - start))
            ]
            for start in range(0, items, batch)
        ]
        started = time.monotonic()
        batch_ids = []
        for n, chunk in enumerate(chunks):
            response = await client.post(
                "/v1/replenishment-batches",
                json={"items": chunk},
                headers={"Idempotency-Key": f"bench-{started}-{n}"},
            )
            response.raise_for_status()
            batch_ids.append(response.json()["id"])
        submitted = time.monotonic()
        for batch_id in batch_ids:
            while True:
                response = await client.get(
                    f"/v1/replenishment-batches/{batch_id}", params={"wait": 30}
                )
                response.raise_for_status()
                body = response.json()
                if body["status"] == "completed":
                    if body["succeeded"] != body["total"]:
                        raise RuntimeError(f"batch {batch_id} had failures: {body}")
                    break
        finished = time.monotonic()
    return {
        "items": items,
        "wallets": wallets,
        "batch_size": batch,
        "submission_seconds": round(submitted - started, 3),
        "total_seconds": round(finished - started, 3),
        "items_per_second": round(items / (finished - started), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running paysys (default: start a fresh local one)")
    parser.add_argument("--api-key")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--wallets", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    args = parser.parse_args()

    admin_url = os.environ.get(
        "PAYSYS_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    local = None
    if args.url:
        url, api_key = args.url, args.api_key
        if not api_key:
            parser.error("--api-key is required with --url")
    else:
        local = PaysysRun(admin_url, redis_url)
        api_key = local.start()
        url = local.url
    try:
        result = asyncio.run(_run(url, api_key, args.items, args.wallets, args.batch))
    finally:
        if local is not None:
            local.stop()
    tps = pgbench_tps(admin_url, seconds=args.pgbench_seconds)
    result["pgbench_tpcb_tps"] = round(tps, 1)
    result["ratio_to_pgbench"] = round(result["items_per_second"] / tps, 2)
    path = write_results("batch", result)
    print(
        f"{'items':>10} {'wallets':>8} {'batch':>6} {'seconds':>8} {'items/s':>9} "
        f"{'pgbench tps':>12} {'ratio':>6}"
    )
    print(
        f"{result['items']:>10} {result['wallets']:>8} {result['batch_size']:>6} "
        f"{result['total_seconds']:>8} {result['items_per_second']:>9} "
        f"{result['pgbench_tpcb_tps']:>12} {result['ratio_to_pgbench']:>6}"
    )
    print(f"(written to {path})")


if __name__ == "__main__":
    main()
