"""Chaos: a steady load through the HTTP API while workers are killed, Redis loses
everything, PostgreSQL restarts and stops, and the API dies mid-request. Afterwards every
accepted operation is final, applied exactly once, in order, and the ledger balances.

The test runs its own PostgreSQL cluster and Redis server, so it can stop and kill them
without disturbing anything else on the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from devtools.processes import children, free_port, run_paysys, wait_ready
from shared.money import format_cents
from tests.private_servers import PrivatePostgres, PrivateRedis
from tests.stack import Service

WALLETS = 60
HOT = 3  # wallets 0..2 take a large share of the traffic
OPENING_CENTS = 100_000  # 1,000.00 each
CLIENTS = 12
ROUNDS = 2  # every fault is injected this many times
MIN_OPERATIONS = 2000
REQUEST_TIMEOUT = 10.0  # a request that takes longer counts as a hang
RECOVERY_DEADLINE = 30.0


@dataclass
class Submission:
    """One logical operation as the client sees it, retried with one key until a 202."""

    key: str
    kind: str
    queue_wallet: str
    amount: int
    destination: str | None
    first_sent: float = 0.0
    accepted_at: float | None = None
    operation_id: str | None = None


@dataclass
class Observations:
    statuses: Counter[int] = field(default_factory=Counter)
    network_errors: int = 0
    hangs: int = 0
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class Load:
    """CLIENTS concurrent clients submitting replenishments and transfers until told to
    stop; each keeps retrying its current operation (same Idempotency-Key) through
    503s, 409s and dropped connections until it gets its 202."""

    def __init__(self, base_url: str, api_key: str, wallets: list[str]):
        self.base_url = base_url
        self.api_key = api_key
        self.wallets = wallets
        self.submissions: list[Submission] = []
        self.seen = Observations()
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def _pick(self) -> str:
        if self.rng.random() < 0.4:
            return self.wallets[self.rng.randrange(HOT)]
        return self.rng.choice(self.wallets)

    def _next(self) -> Submission:
        amount = self.rng.randint(1, 2000)
        if self.rng.random() < 0.25:
            return Submission(f"chaos-{uuid.uuid4()}", "replenishment", self._pick(), amount, None)
        source = self._pick()
        destination = self._pick()
        while destination == source:
            destination = self.rng.choice(self.wallets)
        return Submission(f"chaos-{uuid.uuid4()}", "transfer", source, amount, destination)

    async def _submit(self, http: httpx.AsyncClient, sub: Submission) -> None:
        if sub.kind == "replenishment":
            path = f"/v1/wallets/{sub.queue_wallet}/replenishments"
            body: dict[str, Any] = {"amount": format_cents(sub.amount)}
        else:
            path = "/v1/transfers"
            body = {
                "from_wallet_id": sub.queue_wallet,
                "to_wallet_id": sub.destination,
                "amount": format_cents(sub.amount),
            }
        sub.first_sent = time.monotonic()
        self.submissions.append(sub)
        delay = 0.05
        while True:
            started = time.monotonic()
            try:
                response = await http.post(path, json=body, headers={"Idempotency-Key": sub.key})
            except httpx.TimeoutException:
                self.seen.hangs += 1
            except httpx.TransportError:
                self.seen.network_errors += 1
            else:
                self.seen.statuses[response.status_code] += 1
                if response.status_code == 202:
                    sub.accepted_at = time.monotonic()
                    sub.operation_id = response.json()["id"]
                    return
                if response.status_code >= 500 and response.status_code != 503:
                    self.seen.server_errors.append(f"{response.status_code} {response.text}")
                elif response.status_code == 503:
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert response.json()["code"] == "service_unavailable"
                    if time.monotonic() - started > REQUEST_TIMEOUT:
                        self.seen.hangs += 1
                elif response.status_code != 409:
                    self.seen.unexpected.append(f"{response.status_code} {response.text}")
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _client(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=REQUEST_TIMEOUT,
        ) as http:
            while not self.stop.is_set():
                await self._submit(http, self._next())

    async def _run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(CLIENTS)))

    def start(self) -> None:
        self.thread.start()

    def finish(self, timeout: float = 120) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "clients still retrying long after the faults ended"


class System:
    """paysys (API, worker, sweeper) on a private PostgreSQL and Redis."""

    def __init__(self, log_dir: Path):
        self.pg = PrivatePostgres()
        self.redis = PrivateRedis()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.database_url = ""
        self.env: dict[str, str] = {}
        self.api: Service
        self.worker: Service
        self.sweeper: Service

    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        self.redis.start()
        self.database_url = self.pg.create_database("paysys")
        prefix = f"paysys-chaos-{uuid.uuid4().hex[:8]}"
        self.env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "PAYSYS_REDIS_PREFIX": prefix,
            "PAYSYS_CELERY_QUEUE": prefix,
            "PAYSYS_API_PORT": str(self.port),
            "PAYSYS_SWEEPER_INTERVAL": "0.5",
            "PAYSYS_SWEEPER_MIN_AGE": "1",
        }
        assert self.cli("migrate").returncode == 0
        self.api = Service("api", ["api"], self.env, self.log_dir)
        self.worker = Service("worker", ["worker", "--concurrency", "2"], self.env, self.log_dir)
        self.sweeper = Service("sweeper", ["sweeper"], self.env, self.log_dir)
        for service in (self.api, self.worker, self.sweeper):
            service.start()
        wait_ready(self.base_url, timeout=60)
        self.worker.wait_for_log("ready.")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_paysys(*args, env={**os.environ, **self.env}, timeout=300)

    def stop(self) -> None:
        for name in ("api", "worker", "sweeper"):
            service = getattr(self, name, None)
            if service is not None:
                service.stop()
        self.pg.destroy()
        self.redis.destroy()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    system = System(tmp_path)
    try:
        system.start()
        yield system
    finally:
        system.stop()
        for name in ("api", "worker", "sweeper"):
            log = tmp_path / f"{name}.log"
            if log.exists() and "Traceback" in log.read_text(errors="replace"):
                tail = log.read_text(errors="replace")[-4000:]
                print(f"\n===== {name} log (tail) =====\n{tail}")


def _http(system: System, api_key: str) -> httpx.Client:
    return httpx.Client(
        base_url=system.base_url,
        timeout=REQUEST_TIMEOUT,
        headers={"Authorization": f"Bearer {api_key}"},
    )


def _wait_final(http: httpx.Client, operation_id: str, timeout: float) -> float:
    """Seconds until the operation is final (via long poll, riding out 503s)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            response = http.get(f"/v1/operations/{operation_id}", params={"wait": 5})
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if response.status_code == 200 and response.json()["status"] != "pending":
            return time.monotonic() - started
        if response.status_code != 200:
            time.sleep(0.2)
    raise AssertionError(f"operation {operation_id} not final after {timeout}s")


def _probe_recovery(system: System, api_key: str, wallet: str) -> float:
    """Seconds from now until a fresh replenishment, retried through errors, is applied."""
    started = time.monotonic()
    key = f"probe-{uuid.uuid4()}"
    with _http(system, api_key) as http:
        while True:
            try:
                response = http.post(
                    f"/v1/wallets/{wallet}/replenishments",
                    json={"amount": "0.01"},
                    headers={"Idempotency-Key": key},
                )
                if response.status_code == 202:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() - started < RECOVERY_DEADLINE, "API did not recover"
            time.sleep(0.2)
        _wait_final(http, response.json()["id"], RECOVERY_DEADLINE)
    return time.monotonic() - started


def _assert_unavailable_fast(system: System, api_key: str, wallet: str) -> int:
    """While PostgreSQL is down, the API answers 503 problem+json quickly: never a 500,
    never a hang."""
    probes = 0
    with _http(system, api_key) as http:
        for method, path, body in [
            ("GET", "/v1/accounts", None),
            ("GET", f"/v1/wallets/{wallet}", None),
            ("POST", f"/v1/wallets/{wallet}/replenishments", {"amount": "1.00"}),
        ]:
            started = time.monotonic()
            response = http.request(
                method, path, json=body, headers={"Idempotency-Key": f"down-{uuid.uuid4()}"}
            )
            assert time.monotonic() - started < 5, f"{method} {path} took too long"
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "service_unavailable"
            probes += 1
        ready = httpx.get(f"{system.base_url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"] == "unavailable"
    return probes


def _fund(system: System, api_key: str) -> list[str]:
    with _http(system, api_key) as http:
        wallets = []
        for i in range(WALLETS):
            response = http.post("/v1/accounts", json={"name": f"chaos {i}"})
            assert response.status_code == 201, response.text
            wallets.append(response.json()["wallet"]["id"])
        operations = []
        for wallet in wallets:
            response = http.post(
                f"/v1/wallets/{wallet}/replenishments",
                json={"amount": format_cents(OPENING_CENTS)},
                headers={"Idempotency-Key": f"fund-{wallet}"},
            )
            assert response.status_code == 202
            operations.append(response.json()["id"])
        for operation_id in operations:
            _wait_final(http, operation_id, 60)
    return wallets


def test_chaos_keeps_every_guarantee(system: System) -> None:
    api_key = system.cli("api-keys", "create", "chaos").stdout.strip().splitlines()[-1]
    wallets = _fund(system, api_key)
    load = Load(system.base_url, api_key, wallets)
    faults: Counter[str] = Counter()
    recoveries: dict[str, float] = {}
    unavailable_probes = 0

    def repaired(name: str) -> None:
        faults[name] += 1
        took = _probe_recovery(system, api_key, wallets[-1])
        recoveries[name] = max(recoveries.get(name, 0.0), took)
        time.sleep(2)  # steady load between faults

    def kill_worker_group() -> None:
        system.worker.signal_group(signal.SIGKILL)
        system.worker.proc.wait()  # type: ignore[union-attr]
        time.sleep(3)
        system.worker.start()
        system.worker.wait_for_log("ready.", timeout=60)

    def celery_main() -> int:
        """`paysys worker` runs Celery as its child, and starts a new one when Celery dies
        (as it may after a Redis restart): wait for the one running now and its pool."""
        deadline = time.monotonic() + 60
        while True:
            mains = children(system.worker.pid)
            if len(mains) == 1 and children(next(iter(mains))):
                return next(iter(mains))
            assert time.monotonic() < deadline, "the worker has no Celery process with a pool"
            time.sleep(0.2)

    def kill_worker_child() -> None:
        pool = children(celery_main())
        assert pool, "the worker has no pool children"
        os.kill(max(pool), signal.SIGKILL)

    def kill_celery_main() -> None:
        ready_before = system.worker.log().count("ready.")
        os.kill(celery_main(), signal.SIGKILL)  # nobody restarts it but paysys itself
        deadline = time.monotonic() + 60
        while system.worker.log().count("ready.") == ready_before:
            assert time.monotonic() < deadline, "the worker did not come back by itself"
            time.sleep(0.2)

    def sigterm_worker() -> None:
        system.worker.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        assert system.worker.proc.wait(timeout=60) == 0  # type: ignore[union-attr]
        assert "Warm shutdown" in system.worker.log()
        system.worker.start()
        system.worker.wait_for_log("ready.", timeout=60)

    def restart_redis() -> None:
        system.redis.kill()
        system.redis.start()

    def redis_down() -> None:
        system.redis.kill()
        time.sleep(10)
        system.redis.start()

    def restart_postgres() -> None:
        system.pg.restart()

    def postgres_down() -> None:
        nonlocal unavailable_probes
        system.pg.stop("fast")
        started = time.monotonic()
        unavailable_probes += _assert_unavailable_fast(system, api_key, wallets[0])
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))
        system.pg.start()

    def kill_api() -> None:
        system.api.signal_group(signal.SIGKILL)
        system.api.proc.wait()  # type: ignore[union-attr]
        time.sleep(1)
        system.api.start()
        wait_ready(system.base_url, timeout=60)

    schedule: list[tuple[str, Callable[[], None]]] = [
        ("worker killed -9 (main and pool)", kill_worker_group),
        ("redis restarted, queue lost", restart_redis),
        ("worker pool child killed -9", kill_worker_child),
        ("celery main process killed -9, restarted by paysys", kill_celery_main),
        ("postgres restarted", restart_postgres),
        ("api killed -9 mid-request", kill_api),
        ("worker SIGTERM during drains", sigterm_worker),
        ("redis down 10 s", redis_down),
        ("postgres down 10 s (fast stop)", postgres_down),
    ]

    load.start()
    time.sleep(3)
    for _ in range(ROUNDS):
        for name, inject in schedule:
            inject()
            repaired(name)
    while len(load.submissions) < MIN_OPERATIONS:
        time.sleep(0.5)
    last_repair = time.monotonic()
    load.finish()
    for service in (system.api, system.worker, system.sweeper):
        assert service.running(), f"{service.name} died:\n{service.log()[-3000:]}"

    # --- every accepted operation becomes final without help --------------------------
    accepted = [s for s in load.submissions if s.operation_id is not None]
    assert len(accepted) >= MIN_OPERATIONS
    assert len(accepted) == len(load.submissions), load.seen.unexpected[:5]
    conn = psycopg2.connect(system.database_url)
    conn.autocommit = True
    cur = conn.cursor()
    while True:
        cur.execute("SELECT count(*) FROM operation WHERE status = 'pending'")
        pending = cur.fetchone()[0]  # type: ignore[index]
        if pending == 0:
            break
        assert time.monotonic() - last_repair < RECOVERY_DEADLINE, f"{pending} still pending"
        time.sleep(0.25)
    time_to_final = time.monotonic() - last_repair

    # --- exactly once ---------------------------------------------------------------
    cur.execute(
        "SELECT o.idempotency_key, o.id::text, o.status, o.type, o.amount, o.position, "
        "o.queue_wallet_id::text, count(t.id) FROM operation o "
        "LEFT JOIN transaction t ON t.operation_id = o.id GROUP BY o.id"
    )
    rows = cur.fetchall()
    by_key: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_key[row[0]].append(row)
    for sub in accepted:
        [row] = by_key[sub.key]  # one operation per key
        assert row[1] == sub.operation_id
        assert row[7] == (1 if row[2] == "succeeded" else 0)
    client_keys = {s.key for s in accepted}
    stray = [k for k in by_key if k not in client_keys and not k.startswith(("fund-", "probe-"))]
    assert stray == [], "operations nobody asked for"

    # --- conservation, against the client's own account of what succeeded ------------
    status = {row[1]: row[2] for row in rows}
    expected: dict[str, int] = dict.fromkeys(wallets, OPENING_CENTS)
    for row in rows:
        if row[0].startswith("probe-") and row[2] == "succeeded":
            expected[row[6]] += row[4]
    for sub in accepted:
        if status[sub.operation_id] != "succeeded":
            continue
        if sub.kind == "replenishment":
            expected[sub.queue_wallet] += sub.amount
        else:
            expected[sub.queue_wallet] -= sub.amount
            expected[sub.destination] += sub.amount  # type: ignore[index]
    cur.execute("SELECT id::text, balance FROM wallet WHERE kind = 'user'")
    actual = dict(cur.fetchall())
    assert actual == expected
    assert min(actual.values()) >= 0
    cur.execute("SELECT sum(balance) FROM wallet")
    assert cur.fetchone()[0] == 0  # type: ignore[index]

    # --- per-wallet order: an operation accepted before another was sent comes first --
    position = {row[1]: row[5] for row in rows}
    for wallet in wallets:
        queue = [s for s in accepted if s.queue_wallet == wallet]
        by_acceptance = sorted(queue, key=lambda s: s.accepted_at or 0)
        highest_before = 0
        index = 0
        for sub in sorted(queue, key=lambda s: s.first_sent):
            while (
                index < len(by_acceptance)
                and (by_acceptance[index].accepted_at or 0) < sub.first_sent
            ):
                earlier = by_acceptance[index].operation_id
                highest_before = max(highest_before, position[earlier])
                index += 1
            assert position[sub.operation_id] > highest_before

    # --- the whole ledger -------------------------------------------------------------
    audit = system.cli("audit")
    assert audit.returncode == 0, audit.stdout
    conn.close()

    # --- what the clients saw ---------------------------------------------------------
    assert load.seen.server_errors == []
    assert load.seen.hangs == 0
    for name, _ in schedule:
        assert faults[name] == ROUNDS
    outcomes = Counter(status[s.operation_id] for s in accepted)
    report = {
        "operations_accepted": len(accepted),
        "outcomes": dict(outcomes),
        "responses": {str(k): v for k, v in sorted(load.seen.statuses.items())},
        "dropped_connections": load.seen.network_errors,
        "faults": dict(faults),
        "unavailable_probes_answered_503": unavailable_probes,
        "longest_recovery_seconds": {k: round(v, 2) for k, v in recoveries.items()},
        "seconds_to_all_final_after_last_repair": round(time_to_final, 2),
        "invariant_violations": 0,
    }
    print("\nCHAOS REPORT " + json.dumps(report, indent=2))
    # Funded wallets and small amounts: most transfers fit, so a run where nearly
    # everything failed would mean the ledger refused work it should have done.
    assert outcomes["succeeded"] > len(accepted) // 2
