"""What every benchmark needs: a paysys to measure (a URL given, or a fresh local one
started here), an API key, and pgbench's TPC-B on the same machine as the yardstick."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2

RESULTS = Path(__file__).parent / "results"


# Resolved once, here: between fork and exec (where `die_with_parent` runs, possibly while
# other threads of this process hold locks) nothing should load or import anything.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: be sent SIGTERM when the process that started it dies
    (killed, say), rather than live on as an orphan (Linux)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_url(database_url: str, database: str) -> str:
    base, _, _ = database_url.rpartition("/")
    return f"{base}/{database}"


def recreate_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


@dataclass
class LocalPaysys:
    """A fresh paysys (its own database and Redis names) run as `paysys` subprocesses."""

    admin_url: str
    redis_url: str
    api_workers: int = 1
    worker_processes: int = 1
    worker_concurrency: int | None = None  # paysys's default
    extra_env: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.database = f"paysys_bench_{self.run_id}"
        self.log_dir = RESULTS / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": server_url(self.admin_url, self.database),
            "REDIS_URL": self.redis_url,
            "PAYSYS_REDIS_PREFIX": f"paysys-bench-{self.run_id}",
            "PAYSYS_CELERY_QUEUE": f"paysys-bench-{self.run_id}",
            "PAYSYS_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paysys(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "paysys", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "paysys", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def start(self) -> str:
        """Start everything; return an API key."""
        recreate_database(self.admin_url, self.database)
        self.paysys("migrate")
        self._spawn("api", "api", "--port", str(self.port), "--workers", str(self.api_workers))
        for n in range(self.worker_processes):
            concurrency = (
                [] if self.worker_concurrency is None else ["-c", str(self.worker_concurrency)]
            )
            self._spawn(f"worker{n}", "worker", *concurrency)
        self._spawn("sweeper", "sweeper")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("paysys did not become ready")
        time.sleep(2)  # workers connect to the broker
        return self.paysys("api-keys", "create", "bench").strip().splitlines()[-1]

    def pids(self, prefix: str) -> list[int]:
        """The processes (with their children) whose service name starts with `prefix`."""
        found = []
        for name, proc in self.procs.items():
            if name.startswith(prefix):
                found.append(proc.pid)
                found += _children(proc.pid)
        return found

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        conn.close()


def _children(pid: int) -> list[int]:
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            table[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, parent in table.items() if parent in frontier}
        found += frontier
    return found


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


def _pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    bindir = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    for candidate in [Path(bindir) / "pgbench", *installed]:
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("pgbench not found")


def pgbench_tps(admin_url: str, scale: int = 10, clients: int = 16, seconds: int = 15) -> float:
    """pgbench's built-in TPC-B: one bank transfer per PostgreSQL transaction."""
    database = "paysys_pgbench"
    recreate_database(admin_url, database)
    url = server_url(admin_url, database)
    binary = _pgbench_binary()
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
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    conn.close()
    return float(match[1])


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
