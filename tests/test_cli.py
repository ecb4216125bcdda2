"""The command line, run as users run it: `python -m paysys ...` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2
import pytest
from sqlalchemy.engine import make_url

from shared.migrate import upgrade
from tests.conftest import ENV, Stack
from tests.helpers import Api
from tests.procs import alive, descendants, kill_all
from tests.stack import create_database, drop_database, free_port, wait_ready


def paysys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paysys", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_api_keys_create_prints_a_working_key_last(stack: Stack) -> None:
    result = paysys("api-keys", "create", f"cli-{uuid.uuid4().hex[:8]}")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_") and " " not in key
    client = Api(stack.base_url, key)
    assert client.get("/v1/accounts").status_code == 200
    # A second key for the same tenant sees the same accounts.
    name = result.stdout.split()[1]
    again = paysys("api-keys", "create", name).stdout.strip().splitlines()[-1]
    assert again != key
    account = client.create_account("Shared")
    second = Api(stack.base_url, again)
    assert second.get(f"/v1/accounts/{account['id']}").status_code == 200
    second.close()
    client.close()


def test_migrate_is_idempotent(database_url: str) -> None:
    result = paysys("migrate")
    assert result.returncode == 0, result.stderr
    assert "latest schema" in result.stdout


@pytest.fixture
def scratch_url() -> Iterator[str]:
    name = f"paysys_scratch_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    upgrade(make_url(url).set(drivername="postgresql+psycopg2").render_as_string(False))
    try:
        yield url
    finally:
        drop_database(name)


def test_audit_reports_a_corrupted_ledger(scratch_url: str) -> None:
    clean = paysys("audit", env={"DATABASE_URL": scratch_url})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "hold" in clean.stdout

    conn = psycopg2.connect(scratch_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # Triggers off (what only a superuser can do) to write what the schema refuses.
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            "UPDATE wallet SET balance = 1234, entry_count = 1 "
            "WHERE id = '00000000-0000-7000-8000-000000000001'"
        )
    conn.close()
    broken = paysys("audit", env={"DATABASE_URL": scratch_url})
    assert broken.returncode == 1
    assert "BROKEN balances_are_sums_of_postings" in broken.stdout
    assert "BROKEN conservation" in broken.stdout
    assert "00000000-0000-7000-8000-000000000001" in broken.stdout


def _start_run(log: Path, port: int) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "paysys", "run", "--port", str(port)],
            env={**os.environ, **ENV.variables()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_run_serves_everything_and_ctrl_c_stops_every_child(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    run = _start_run(tmp_path / "run.log", port)
    children: set[int] = set()
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, timeout=60)
        key = paysys("api-keys", "create", f"run-{uuid.uuid4().hex[:8]}").stdout.split()[-1]
        client = Api(base_url, key)
        source = client.funded_wallet("10.00")
        destination = client.create_wallet()
        operation = client.transfer(source, destination, "4.00").json()
        assert client.wait(operation["id"])["status"] == "succeeded"
        client.close()

        children = descendants(run.pid)
        assert len(children) >= 4  # api, worker (+ its pool), sweeper
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=40) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if alive(pid)]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base_url}/healthz", timeout=2)
    finally:
        if run.poll() is None:
            run.kill()
        kill_all(children, signal.SIGKILL)


def test_run_stops_everything_when_a_child_dies(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    run = _start_run(tmp_path / "run.log", port)
    children: set[int] = set()
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        children = descendants(run.pid)
        sweeper = next(
            pid for pid in children if b"sweeper" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        os.kill(sweeper, signal.SIGKILL)
        assert run.wait(timeout=40) == 1
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if alive(pid)]
        assert "sweeper exited" in (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
        kill_all(children, signal.SIGKILL)
