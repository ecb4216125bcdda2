"""What every benchmark needs: a paysys to measure (a URL given, or a fresh local one
started here), an API key, and pgbench's TPC-B on the same machine as the yardstick."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from devtools.databases import (
    database_url,
    drop_database,
    execute,
    postgres_program,
    recreate_database,
)
from devtools.processes import (
    PAYSYS,
    cmdline,
    descendants,
    free_port,
    run_paysys,
    spawn,
    terminate,
    wait_ready,
)

RESULTS = Path(__file__).parent / "results"


class PaysysRun:
    """`paysys run` on a fresh database, as a user would start it."""

    def __init__(
        self,
        admin_url: str,
        redis_url: str,
        concurrency: int | None = None,
        allow_private_webhooks: bool = False,
    ):
        self.admin_url = admin_url
        self.port = free_port()
        self.database = f"paysys_bench_{uuid.uuid4().hex[:8]}"
        prefix = f"paysys-bench-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(admin_url, self.database),
            "REDIS_URL": redis_url,
            "PAYSYS_REDIS_PREFIX": prefix,
            "PAYSYS_CELERY_QUEUE": prefix,
            "PAYSYS_LOG_LEVEL": "WARNING",
        }
        if allow_private_webhooks:  # the benchmark's receiver is on this machine
            self.env["PAYSYS_WEBHOOK_ALLOW_PRIVATE"] = "true"
        if concurrency is not None:  # otherwise, paysys's default
            self.env["PAYSYS_WORKER_CONCURRENCY"] = str(concurrency)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        recreate_database(self.admin_url, self.database)
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(
            [*PAYSYS, "run", "--port", str(self.port)],
            env=self.env,
            log=RESULTS / "paysys-run.log",
            append=True,
        )
        try:
            wait_ready(self.url, timeout=90, interval=0.3)
        except TimeoutError:
            raise RuntimeError("paysys run did not become ready; see bench/results") from None
        time.sleep(2)
        out = run_paysys("api-keys", "create", "bench", env=self.env, check=True).stdout
        return out.strip().splitlines()[-1]

    def pids(self, role: str) -> list[int]:
        assert self.proc is not None
        found: set[int] = set()
        for pid in descendants(self.proc.pid):
            if f"paysys {role}" in cmdline(pid):
                found |= {pid, *descendants(pid)}
        return sorted(found)

    def settle(self) -> None:
        """What pgbench does before each run: vacuum (and analyze) the tables. And a
        checkpoint, so that one does not fall in the middle of the measurement."""
        execute(database_url(self.admin_url, self.database), "VACUUM ANALYZE", "CHECKPOINT")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, signal.SIGINT, 60)
        drop_database(self.admin_url, self.database)


def _kb(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pids: list[int]) -> float:
    """The largest resident set among the processes."""
    return max((_kb(f"/proc/{pid}/status", "VmRSS:") for pid in pids), default=0) / 1024


def pss_mb(pids: list[int]) -> float:
    """The processes' memory, pages shared between them counted once in all (PSS). A sum of
    RSS would count a forked pool's shared pages once per process."""
    return sum(_kb(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids) / 1024


def pgbench_tps(admin_url: str, scale: int = 10, clients: int = 16, seconds: int = 15) -> float:
    """pgbench's built-in TPC-B: one bank transfer per PostgreSQL transaction."""
    database = "paysys_pgbench"
    url = recreate_database(admin_url, database)
    binary = postgres_program("pgbench")
    subprocess.run([binary, "-i", "-q", "-s", str(scale), url], check=True, capture_output=True)
    out = subprocess.run(
        [binary, "-c", str(clients), "-j", "2", "-T", str(seconds), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(f"unexpected pgbench output:\n{out}")
    drop_database(admin_url, database)
    return float(match[1])


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
