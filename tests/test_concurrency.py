from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import httpx
import psycopg2.extensions

from devtools.processes import run_paysys
from shared.money import format_cents
from tests.conftest import query
from tests.helpers import Api, new_key

WALLETS = 20
TRANSFERS = 1000
CLIENTS = 20


def test_concurrent_random_transfers_keep_every_invariant(
    api: Api, db: psycopg2.extensions.connection
) -> None:
    wallets = [api.funded_wallet("50.00", f"W{i}") for i in range(WALLETS)]
    start_total = sum((api.balance(w) for w in wallets), Decimal(0))
    rng = random.Random(42)
    plan = []
    for _ in range(TRANSFERS):
        source, destination = rng.sample(wallets, 2)
        plan.append((source, destination, format_cents(rng.randint(1, 2500))))

    async def client(jobs: asyncio.Queue[tuple[str, str, str]], accepted: list[str]) -> None:
        async with httpx.AsyncClient(
            base_url=api.base_url,
            headers={"Authorization": f"Bearer {api.api_key}"},
            timeout=60,
        ) as http:
            while not jobs.empty():
                source, destination, amount = jobs.get_nowait()
                response = await http.post(
                    "/v1/transfers",
                    json={"from_wallet_id": source, "to_wallet_id": destination, "amount": amount},
                    headers={"Idempotency-Key": new_key()},
                )
                assert response.status_code == 202, response.text
                accepted.append(response.json()["id"])

    async def run() -> list[str]:
        jobs: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        for job in plan:
            jobs.put_nowait(job)
        accepted: list[str] = []
        await asyncio.gather(*(client(jobs, accepted) for _ in range(CLIENTS)))
        return accepted

    accepted = asyncio.run(run())
    assert len(accepted) == TRANSFERS

    outcomes = [api.wait(op, timeout=60) for op in accepted]
    statuses = {o["status"] for o in outcomes}
    assert statuses <= {"succeeded", "failed"}
    assert all(
        o["error"]["code"] == "insufficient_funds" for o in outcomes if o["status"] == "failed"
    )
    succeeded = sum(o["status"] == "succeeded" for o in outcomes)
    assert succeeded > TRANSFERS // 2  # random amounts against 50.00 wallets: most fit

    balances = {w: api.balance(w) for w in wallets}
    assert sum(balances.values(), Decimal(0)) == start_total
    assert min(balances.values()) >= 0
    for wallet in wallets:
        postings = api.postings(wallet)
        assert sum((Decimal(p["amount"]) for p in postings), Decimal(0)) == balances[wallet]
        assert Decimal(postings[0]["balance_after"]) == balances[wallet]

    moved = query(
        db,
        "SELECT count(*) FROM transaction t JOIN operation o ON o.id = t.operation_id "
        "WHERE o.id = ANY(%s::uuid[])",
        accepted,
    )[0][0]
    assert moved == succeeded

    audit = run_paysys("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "all" in audit.stdout and "hold" in audit.stdout
