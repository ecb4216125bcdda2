"""The system under test, for real: a fresh PostgreSQL database, a private corner of Redis
(its own key prefix and queue), and `paysys` processes started as subprocesses."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import redis

ADMIN_URL = os.environ.get("PAYSYS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PAYSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(name: str) -> str:
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return database_url(name)


def drop_database(name: str) -> None:
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def clear_redis_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass
class Environment:
    """Settings of one test run, as environment variables for the paysys processes."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def database_name(self) -> str:
        return f"paysys_test_{self.run_id}"

    @property
    def prefix(self) -> str:
        return f"paysys-test-{self.run_id}"

    @property
    def metrics_dir(self) -> str:
        return str(Path(tempfile.gettempdir()) / f"paysys-test-metrics-{self.run_id}")

    def variables(self) -> dict[str, str]:
        return {
            "DATABASE_URL": database_url(self.database_name),
            "REDIS_URL": REDIS_URL,
            "PAYSYS_REDIS_PREFIX": self.prefix,
            "PAYSYS_CELERY_QUEUE": self.prefix,
            "PAYSYS_SWEEPER_INTERVAL": "0.5",
            "PAYSYS_SWEEPER_MIN_AGE": "1",
            "PAYSYS_LOG_LEVEL": "INFO",
            # Tests send many bad keys on purpose, all from 127.0.0.1; the limit on failed
            # authentications has tests of its own, with their own API processes.
            "PAYSYS_AUTH_FAILURE_LIMIT": "100000/second",
            # One metrics directory for the run's processes: the API adds them up.
            "PAYSYS_METRICS_DIR": self.metrics_dir,
        }


class Service:
    """One `paysys` subprocess, its log in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at_byte = 0  # where this start's lines begin in the log

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.started_at_byte = log.tell()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paysys", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach its children
            preexec_fn=die_with_parent,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait()
        self.signal_group(signal.SIGKILL)  # anything of the group left behind
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_start(self) -> str:
        """What the process logged since it was last started."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self.started_at_byte)
            return handle.read().decode(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Wait for `text` among the lines logged since the last start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_since_start():
                return
            if not self.running():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} never logged {text!r}:\n{self.log()[-3000:]}")


def wait_ready(base_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} never became ready")
