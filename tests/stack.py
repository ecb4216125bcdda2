"""The system under test, for real: a fresh PostgreSQL database, a private corner of Redis
(its own key prefix and queue), and `paysys` processes started as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devtools.databases import database_url
from devtools.processes import PAYSYS, signal_group, spawn, terminate

ADMIN_URL = os.environ.get("PAYSYS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PAYSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
            "DATABASE_URL": database_url(ADMIN_URL, self.database_name),
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
            # Webhook receivers are servers of the test process, on 127.0.0.1; retries
            # come within seconds, and a hanging receiver is given up on after 2 s.
            "PAYSYS_WEBHOOK_ALLOW_PRIVATE": "true",
            "PAYSYS_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
            "PAYSYS_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS": "2",
            "PAYSYS_WEBHOOK_TIMEOUT_SECONDS": "2",
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
        self.started_at_byte = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = spawn(
            [*PAYSYS, *self.args],
            env={**os.environ, **self.env},
            log=self.log_path,
            append=True,  # a restart's lines follow the earlier ones'
            own_group=True,  # signals reach its children
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, signum)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        return terminate(self.proc, signal.SIGTERM, timeout, group=True)

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
