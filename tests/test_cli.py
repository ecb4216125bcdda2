"""The command line, run as users run it: `python -m paysys ...` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.processes import (
    PAYSYS,
    cmdline,
    descendants,
    eventually,
    free_port,
    kill_all,
    living,
    parents,
    run_paysys,
    spawn,
    terminate,
    wait_ready,
)
from shared import audit
from tests.conftest import ENV, Stack
from tests.helpers import Api
from tests.scratch_ledger import Conn, Plan, accept, drain_all, scratch_database


def paysys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_paysys(*args, env={**os.environ, **(env or {})}, timeout=120)


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


# A corruption the schema would refuse, written with its guards off (what only a superuser
# can do), and the audit check that must report it.
CORRUPTIONS = {
    "balances_are_sums_of_postings": [
        "UPDATE wallet SET balance = balance + 1 WHERE id = (SELECT wallet_id FROM posting "
        "WHERE amount > 0 AND wallet_id IN (SELECT id FROM wallet WHERE kind = 'user') LIMIT 1)",
    ],
    "conservation": [
        "UPDATE wallet SET balance = balance + 7 WHERE id = (SELECT wallet_id FROM posting "
        "WHERE amount > 0 AND wallet_id IN (SELECT id FROM wallet WHERE kind = 'user') LIMIT 1)",
    ],
    "transactions_balance": [
        "UPDATE posting SET amount = amount + 1, balance_after = balance_after + 1 "
        "WHERE id = (SELECT id FROM posting WHERE amount > 0 ORDER BY id LIMIT 1)",
    ],
    "running_balances": [
        "UPDATE posting SET balance_after = balance_after + 5 "
        "WHERE id = (SELECT id FROM posting WHERE amount > 0 ORDER BY id LIMIT 1)",
    ],
    "no_negative_balance": [
        "ALTER TABLE wallet DROP CONSTRAINT ck_wallet_balance_non_negative",
        "UPDATE posting SET balance_after = -1 WHERE id = (SELECT id FROM posting "
        "WHERE amount > 0 AND wallet_id IN (SELECT id FROM wallet WHERE kind = 'user') LIMIT 1)",
    ],
    "succeeded_once": [
        "ALTER TABLE transaction DROP CONSTRAINT uq_transaction_operation_id",
        "INSERT INTO transaction (id, operation_id, type) SELECT gen_random_uuid(), id, type "
        "FROM operation WHERE status = 'succeeded' LIMIT 1",
    ],
    "postings_match_operations": [
        "UPDATE operation SET amount = amount + 1 "
        "WHERE id = (SELECT id FROM operation WHERE status = 'succeeded' LIMIT 1)",
    ],
    "applied_in_order": [
        "ALTER TABLE operation DROP CONSTRAINT uq_operation_queue_wallet_id_position",
        "UPDATE operation SET position = 1000 - position "
        "WHERE queue_wallet_id = (SELECT queue_wallet_id FROM operation o JOIN transaction t "
        "ON t.operation_id = o.id GROUP BY 1 HAVING count(*) > 1 LIMIT 1)",
    ],
    "final_is_complete": [
        "ALTER TABLE operation DROP CONSTRAINT ck_operation_completed",
        "UPDATE operation SET completed_at = NULL "
        "WHERE id = (SELECT id FROM operation WHERE status = 'succeeded' LIMIT 1)",
    ],
    "one_operation_per_key": [
        "INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, resource_id,"
        " status_code) SELECT tenant_id, 'orphan', '\\x00', 'operation', id, 202 "
        "FROM operation LIMIT 1",
    ],
    "completed_in_order": [
        "UPDATE operation SET status = 'pending', completed_at = NULL, "
        "error_code = NULL WHERE id = (SELECT id FROM operation WHERE position = 1 LIMIT 1)",
    ],
    "held_is_active_holds": [
        "UPDATE wallet SET held = 1 "
        "WHERE id = (SELECT id FROM wallet WHERE kind = 'user' AND balance > 0 LIMIT 1)",
    ],
    "holds_match_operations": [
        "INSERT INTO hold (id, tenant_id, from_wallet_id, to_wallet_id, amount, expires_at) "
        "SELECT id, tenant_id, from_wallet_id, to_wallet_id, amount, now() FROM operation "
        "WHERE type = 'transfer' AND status = 'succeeded' LIMIT 1",
    ],
    "every_change_has_its_event": [
        "DELETE FROM event WHERE id = (SELECT id FROM event "
        "WHERE type = 'operation.succeeded' LIMIT 1)",
    ],
    "every_event_has_its_change": [
        "INSERT INTO event (id, tenant_id, type, data) SELECT gen_random_uuid(), tenant_id, "
        "'operation.failed', data FROM event WHERE type = 'operation.succeeded' LIMIT 1",
    ],
    "reversals_within_amount": [
        "UPDATE operation SET reversed_amount = 1 "
        "WHERE id = (SELECT id FROM operation WHERE type = 'transfer' AND status = 'succeeded' "
        "LIMIT 1)",
    ],
}


@pytest.fixture
def scratch_ledger() -> Iterator[tuple[str, Conn]]:
    """A scratch database with a ledger written by the real ledger service."""
    for url, conn in scratch_database():
        plan: Plan = [("replenishment", i % 4, None, 10_000) for i in range(8)]
        plan += [("transfer", i % 4, (i + 1) % 4, 500 + i) for i in range(12)]
        accept(conn, plan)
        drain_all(conn, max_ops=3)
        yield url, conn


def test_audit_passes_a_sound_ledger(scratch_ledger: tuple[str, Conn]) -> None:
    url, _ = scratch_ledger
    clean = paysys("audit", env={"DATABASE_URL": url})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"all {len(audit.CHECKS)} ledger invariants hold" in clean.stdout


def test_audit_accepts_a_key_reused_after_it_expired(scratch_ledger: tuple[str, Conn]) -> None:
    url, conn = scratch_ledger
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT tenant_id, wallet_id FROM operation WHERE type = 'replenishment' LIMIT 1"
        )
        tenant, wallet = cur.fetchone()  # type: ignore[misc]
        cur.execute("SELECT max(position) FROM operation WHERE queue_wallet_id = %s", (wallet,))
        position = cur.fetchone()[0]  # type: ignore[index]
        ids = []
        for offset in (1, 2):  # the first used "K" more than 24 h ago; its record is gone
            cur.execute(
                "INSERT INTO operation (id, tenant_id, type, amount, currency, wallet_id, "
                "position, idempotency_key) VALUES (gen_random_uuid(), %s, 'replenishment', "
                "100, 'USD', %s, %s, 'K') RETURNING id",
                (tenant, wallet, position + offset),
            )
            ids.append(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(
            "INSERT INTO idempotency_key (tenant_id, key, request_hash, resource_type, "
            "resource_id, status_code) VALUES (%s, 'K', '\\x00', 'operation', %s, 202)",
            (tenant, ids[1]),
        )
    result = paysys("audit", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stdout


def test_every_audit_check_is_shown_to_catch_something() -> None:
    assert set(CORRUPTIONS) == {check.name for check in audit.CHECKS}


@pytest.mark.parametrize("check", sorted(CORRUPTIONS))
def test_audit_reports_a_corrupted_ledger(scratch_ledger: tuple[str, Conn], check: str) -> None:
    url, conn = scratch_ledger
    with conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # triggers off
        for statement in CORRUPTIONS[check]:
            cur.execute(statement)
            assert cur.rowcount != 0, statement
    broken = paysys("audit", env={"DATABASE_URL": url})
    assert broken.returncode == 1, broken.stdout
    assert f"BROKEN {check}:" in broken.stdout


def _start_run(log: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return spawn(
        [*PAYSYS, "run", "--port", str(port)],
        env={**os.environ, **ENV.variables(), **(env or {})},
        log=log,
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
        eventually(lambda: not living(children), within=10, interval=0.2)
        assert not living(children)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base_url}/healthz", timeout=2)
    finally:
        terminate(run, signal.SIGKILL)
        kill_all(children, signal.SIGKILL)


def test_run_stops_everything_when_a_child_dies(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    run = _start_run(tmp_path / "run.log", port)
    children: set[int] = set()
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        children = descendants(run.pid)
        sweeper = next(pid for pid in children if "sweeper" in cmdline(pid))
        os.kill(sweeper, signal.SIGKILL)
        assert run.wait(timeout=40) == 1
        eventually(lambda: not living(children), within=10, interval=0.2)
        assert not living(children)
        assert "sweeper exited" in (tmp_path / "run.log").read_text()
    finally:
        terminate(run, signal.SIGKILL)
        kill_all(children, signal.SIGKILL)


def test_api_keys_list_and_revoke(stack: Stack) -> None:
    name = f"keys-{uuid.uuid4().hex[:8]}"
    key = paysys("api-keys", "create", name).stdout.strip().splitlines()[-1]
    spare = paysys("api-keys", "create", name).stdout.strip().splitlines()[-1]
    listing = paysys("api-keys", "list", name)
    assert listing.returncode == 0
    assert key not in listing.stdout and spare not in listing.stdout  # never the secret
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert len(rows) == 2
    assert {row[1] for row in rows} == {key[:10], spare[:10]}
    key_id = next(row[0] for row in rows if row[1] == key[:10])

    client = Api(stack.base_url, key)
    assert client.get("/v1/accounts").status_code == 200
    revoked = paysys("api-keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    response = client.get("/v1/accounts")  # at once: the API dropped it from its cache
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    client.close()
    other = Api(stack.base_url, spare)
    assert other.get("/v1/accounts").status_code == 200
    other.close()
    again = paysys("api-keys", "revoke", key_id)
    assert again.returncode != 0 and "no active key" in again.stderr
    after = paysys("api-keys", "list", name).stdout.splitlines()
    assert next(line for line in after if key_id in line).split()[-1] != "-"  # revoked at
    assert next(line for line in after if spare[:10] in line).split()[-1] == "-"


def test_run_kills_a_child_that_will_not_stop_with_everything_it_started(
    stack: Stack, tmp_path: Path
) -> None:
    port = free_port()
    run = _start_run(
        tmp_path / "run.log",
        port,
        env={"PAYSYS_STOP_GRACE_SECONDS": "2", "PAYSYS_WORKER_CONCURRENCY": "2"},
    )
    children: set[int] = set()
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=60)
        celery, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:  # until Celery has started its pool
            children, table = descendants(run.pid), parents()
            celery = next(  # Celery's main process: its pool children share its command line
                (
                    pid
                    for pid in children
                    if " worker " in cmdline(pid)  # not `paysys webhooks`' (threads, no pool)
                    and "--no-restart" in cmdline(pid)
                    and "--no-restart" not in cmdline(table.get(pid, 0))
                ),
                None,
            )
            if celery is not None and len(descendants(celery)) == 2:
                break
            time.sleep(0.2)
        assert celery is not None and len(descendants(celery)) == 2, "Celery and its pool"
        os.kill(celery, signal.SIGSTOP)  # hung: it cannot act on the SIGTERM it will get
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=40) == 0
        eventually(lambda: not living(children), within=10, interval=0.2)
        assert not living(children), "left behind"
        assert "worker did not stop in 2.0s" in (tmp_path / "run.log").read_text()
    finally:
        terminate(run, signal.SIGKILL)
        kill_all(children, signal.SIGKILL)
