"""A flood of unknown API keys against a valid client's latency.

A valid client reads a wallet at a steady rate (RATE requests/s, SECONDS seconds) and its
latency is measured three times, each on a fresh `paysys run`:

1. alone;
2. while FLOODERS connections send requests with random unknown keys as fast as they can
   (paysys's defaults: each unknown key is remembered for a minute, and an address past
   `PAYSYS_AUTH_FAILURE_LIMIT` failures gets 429 without a lookup);
3. the same flood with the failure limit lifted, so that every random key is looked up.

    python -m bench.flood [--seconds 10] [--rate 100] [--flooders 8]

Everything runs on this machine (the flood comes from 127.0.0.1, like the client).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from collections import Counter
from typing import Any

import httpx

from bench.common import PaysysRun, write_results


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _measure(url: str, key: str, seconds: float, rate: int, flooders: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        response = await client.post("/v1/accounts", json={"name": "flood bench"})
        response.raise_for_status()
        wallet = response.json()["wallet"]["id"]
        await client.get(f"/v1/wallets/{wallet}")  # the key is cached from here on

        stop = time.monotonic() + seconds
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        flood_statuses: Counter[int] = Counter()

        async def valid() -> None:
            interval = 1 / rate
            next_at = time.monotonic()
            while next_at < stop:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                started = time.monotonic()
                answer = await client.get(f"/v1/wallets/{wallet}")
                latencies.append(time.monotonic() - started)
                statuses[answer.status_code] += 1
                next_at += interval

        async def flood(http: httpx.AsyncClient) -> None:
            while time.monotonic() < stop:
                bad = {"Authorization": f"Bearer sk_{secrets.token_urlsafe(32)}"}
                try:
                    answer = await http.get(f"{url}/v1/accounts", headers=bad)
                    flood_statuses[answer.status_code] += 1
                except httpx.HTTPError:
                    flood_statuses[0] += 1

        async with httpx.AsyncClient(timeout=30) as attacker:
            await asyncio.gather(valid(), *(flood(attacker) for _ in range(flooders)))
    return {
        "valid_requests": sum(statuses.values()),
        "valid_statuses": dict(statuses),
        "valid_p50_ms": round(_percentile(latencies, 0.50) * 1000, 1),
        "valid_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "flood_requests_per_second": round(sum(flood_statuses.values()) / seconds),
        "flood_statuses": dict(flood_statuses),
    }


def _phase(args: argparse.Namespace, flooders: int, **settings: str) -> dict[str, Any]:
    saved = dict(os.environ)
    os.environ.update({f"PAYSYS_{k.upper()}": v for k, v in settings.items()})
    run = PaysysRun(args.admin_url, args.redis_url)
    try:
        key = run.start()
        return asyncio.run(_measure(run.url, key, args.seconds, args.rate, flooders))
    finally:
        run.stop()
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--flooders", type=int, default=8)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1"))
    args = parser.parse_args()
    results = {
        "alone": _phase(args, 0),
        "flood": _phase(args, args.flooders),
        "flood_without_failure_limit": _phase(
            args, args.flooders, auth_failure_limit="1000000/second"
        ),
    }
    for name, figures in results.items():
        print(
            f"{name:30} valid p50 {figures['valid_p50_ms']:6.1f} ms  "
            f"p99 {figures['valid_p99_ms']:6.1f} ms  statuses {figures['valid_statuses']}  "
            f"flood {figures['flood_requests_per_second']}/s {figures['flood_statuses']}"
        )
    print(f"results: {write_results('flood', results)}")


if __name__ == "__main__":
    main()
