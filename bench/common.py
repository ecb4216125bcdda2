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


def execute(url: str, *statements: str) -> None:
    """Statements outside any transaction (CREATE DATABASE, VACUUM, CHECKPOINT)."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def recreate_database(admin_url: str, name: str) -> None:
    execute(
        admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )


class PaysysRun:
    """`paysys run` on a fresh database, as a user would start it."""

    def __init__(self, admin_url: str, redis_url: str, concurrency: int | None = None):
        self.admin_url = admin_url
        self.port = free_port()
        self.database = f"paysys_bench_{uuid.uuid4().hex[:8]}"
        prefix = f"paysys-bench-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "DATABASE_URL": server_url(admin_url, self.database),
            "REDIS_URL": redis_url,
            "PAYSYS_REDIS_PREFIX": prefix,
            "PAYSYS_CELERY_QUEUE": prefix,
            "PAYSYS_LOG_LEVEL": "WARNING",
        }
        if concurrency is not None:  # otherwise, paysys's default
            self.env["PAYSYS_WORKER_CONCURRENCY"] = str(concurrency)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        recreate_database(self.admin_url, self.database)
        RESULTS.mkdir(parents=True, exist_ok=True)
        log = (RESULTS / "paysys-run.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paysys", "run", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError("paysys run did not become ready; see bench/results")
        time.sleep(2)
        out = subprocess.run(
            [sys.executable, "-m", "paysys", "api-keys", "create", "bench"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.strip().splitlines()[-1]

    def pids(self, role: str) -> list[int]:
        assert self.proc is not None
        found = []
        for pid in _children(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ")
            except OSError:
                continue
            if f"paysys {role}".encode() in cmdline:
                found.append(pid)
                found += _children(pid)
        return sorted(set(found))

    def settle(self) -> None:
        """What pgbench does before each run: vacuum (and analyze) the tables. And a
        checkpoint, so that one does not fall in the middle of the measurement."""
        execute(server_url(self.admin_url, self.database), "VACUUM ANALYZE", "CHECKPOINT")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        execute(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


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
    execute(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return float(match[1])


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
