"""The everyday client commands (`paysys accounts`, `transfer`, `events`, `status`, `demo`,
...), run as users run them: `python -m paysys ...` subprocesses against the real stack,
each in a folder of its own (so that no `paysys run` of another folder is found)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import PAYSYS, eventually, free_port, run_paysys, spawn, terminate
from paysys.cli import running
from tests.conftest import ENV, Stack, make_api
from tests.helpers import Api, wallet_queue_held


class Cli:
    """`paysys` in a folder of its own, with a tenant's key."""

    def __init__(self, folder: Path, url: str | None, key: str | None):
        self.folder = folder
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("PAYSYS_URL", "PAYSYS_API_KEY")
        }
        if url is not None:
            self.env["PAYSYS_URL"] = url
        if key is not None:
            self.env["PAYSYS_API_KEY"] = key

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = run_paysys(*args, env=self.env, cwd=self.folder, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(stack: Stack, api: Api, tmp_path: Path) -> Cli:
    return Cli(tmp_path, stack.base_url, api.api_key)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failing command says on stderr."""
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


# --- accounts and wallets ------------------------------------------------------------------


def test_accounts_create_list_and_show(cli: Cli, api: Api) -> None:
    alice = cli("accounts", "create", "Alice")
    assert "Alice" in alice.stdout and "0.00 USD" in alice.stdout
    bob = cli.json("accounts", "create", "Bob")
    assert bob["name"] == "Bob" and bob["wallet"]["balance"] == "0.00"

    listed = cli.json("accounts", "list")
    assert [a["name"] for a in listed["items"]] == ["Bob", "Alice"]  # newest first
    assert listed["next_cursor"] is None
    table = cli("accounts", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["account", "name", "wallet"]
    assert bob["id"] in table[1] and bob["wallet"]["id"] in table[1]

    # Paged: a cursor to the next page; --all walks them.
    first = cli("accounts", "list", "--limit", "1")
    assert "Bob" in first.stdout and "Alice" not in first.stdout
    cursor = first.stderr.split("--cursor ")[1].split()[0]
    assert "Alice" in cli("accounts", "list", "--limit", "1", "--cursor", cursor).stdout
    assert len(cli.json("accounts", "list", "--all")["items"]) == 2

    # --json is the API's JSON.
    assert cli.json("accounts", "show", bob["id"]) == api.get(f"/v1/accounts/{bob['id']}").json()
    shown = cli("accounts", "show", bob["id"]).stdout
    assert bob["wallet"]["id"] in shown and "available" in shown


def test_money_moves_and_the_statement_shows_it(cli: Cli, api: Api) -> None:
    alice = api.create_wallet("Alice")
    bob = api.create_wallet("Bob")
    topup = cli("replenish", alice, "25.00", "--reference", "top-up 42")
    assert "succeeded" in topup.stdout and "top-up 42" in topup.stdout
    transfer = cli.json("transfer", alice, bob, "5.00", "--reference", "rent")
    assert transfer["status"] == "succeeded" and transfer["amount"] == "5.00"
    assert transfer == api.operation(transfer["id"])
    withdrawal = cli.json("withdraw", alice, "2.50")
    assert (withdrawal["type"], withdrawal["status"]) == ("withdrawal", "succeeded")

    statement = cli("wallets", "show", alice).stdout
    assert "17.50 USD" in statement
    lines = statement.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("when"))
    rows = [line.split() for line in lines[header + 1 :]]
    # Newest first, each with the balance after it.
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("withdrawal", "-2.50", "17.50", withdrawal["id"]),
        ("transfer", "-5.00", "20.00", transfer["id"]),
        ("replenishment", "+25.00", "25.00", topup.stdout.split()[1]),
    ]
    shown = cli.json("wallets", "show", alice, "--limit", "2")
    assert shown["wallet"] == api.wallet(alice)
    assert shown["postings"]["items"] == api.postings(alice)[:2]
    assert shown["postings"]["next_cursor"] is not None


def test_holds_captures_voids_and_reversals(cli: Cli, api: Api) -> None:
    alice = api.funded_wallet("20.00", "Alice")
    bob = api.create_wallet("Bob")
    held = cli.json("hold", alice, "8.00", "--to", bob, "--reference", "order 1")
    assert (held["type"], held["status"]) == ("hold", "succeeded")
    hold = cli.json("holds", "show", held["id"])
    assert (hold["status"], hold["amount"]) == ("held", "8.00")
    assert "held" in cli("holds", "show", held["id"]).stdout

    captured = cli.json("capture", held["id"], "6.00", "--reference", "delivered")
    assert (captured["type"], captured["status"], captured["amount"]) == (
        "capture",
        "succeeded",
        "6.00",
    )
    reversal = cli("reverse", captured["id"], "2.00")
    assert "reversal" in reversal.stdout and "succeeded" in reversal.stdout
    assert api.operation(captured["id"])["reversed_amount"] == "2.00"
    assert api.funds(alice) == ("16.00", "0.00", "16.00")

    again = api.active_hold(alice, "3.00")
    voided = cli.json("void", again)
    assert (voided["type"], voided["status"]) == ("void", "succeeded")
    assert api.funds(alice) == ("16.00", "0.00", "16.00")
    # A second void: the hold is no longer held, the operation fails.
    failed = cli("void", again, ok=False)
    assert failed.returncode == 1
    assert "hold_not_active" in error_line(failed)


# --- outcomes and errors -------------------------------------------------------------------


def test_a_failed_transfer_says_why_and_exits_1(cli: Cli, api: Api) -> None:
    poor = api.funded_wallet("3.00")
    other = api.create_wallet()
    result = cli("transfer", poor, other, "5.00", ok=False)
    assert result.returncode == 1
    assert "failed" in result.stdout and "insufficient_funds" in result.stdout
    line = error_line(result)
    assert line.startswith("error: transfer ") and "failed: insufficient_funds" in line
    as_json = cli("transfer", poor, other, "5.00", "--json", ok=False)
    assert as_json.returncode == 1
    operation = json.loads(as_json.stdout)
    assert operation["status"] == "failed"
    assert operation["error"]["code"] == "insufficient_funds"
    assert api.balance(poor) == Decimal("3.00")


def test_problems_are_one_line_with_their_code(cli: Cli, api: Api) -> None:
    wallet = api.funded_wallet("3.00")
    other = api.create_wallet()
    bad = cli("transfer", wallet, other, "5.001", ok=False)
    assert bad.returncode == 3
    assert (
        error_line(bad) == "error: validation_error: amount: amount has more than 2 fraction digits"
    )
    assert bad.stdout == ""
    missing = str(uuid.uuid4())
    unknown = cli("replenish", missing, "1.00", ok=False)
    assert unknown.returncode == 3
    assert error_line(unknown).startswith("error: not_found: ")
    assert cli("wallets", "show", missing, ok=False).returncode == 3
    assert error_line(cli("accounts", "show", missing, ok=False)).startswith("error: not_found")


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    cli = Cli(tmp_path, url, "sk_whatever")
    for args in (["accounts", "list"], ["transfer", str(uuid.uuid4()), str(uuid.uuid4()), "1"]):
        result = cli(*args, ok=False)
        assert result.returncode == 3
        assert result.stderr.strip() == (
            f"error: cannot reach paysys at {url} (is `paysys run` going?)"
        )
    status = cli("status", ok=False)
    assert status.returncode == 1
    assert f"cannot reach paysys at {url}" in status.stdout


def test_without_a_key_it_says_how_to_get_one(tmp_path: Path, stack: Stack) -> None:
    result = Cli(tmp_path, stack.base_url, None)("accounts", "list", ok=False)
    assert result.returncode == 2
    assert "PAYSYS_API_KEY" in error_line(result)
    refused = Cli(tmp_path, stack.base_url, "sk_unknown")("accounts", "list", ok=False)
    assert refused.returncode == 3
    assert error_line(refused).startswith("error: unauthorized: ")


def test_an_idempotency_key_makes_a_retry_safe(cli: Cli, api: Api) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    key = f"cli-{uuid.uuid4()}"
    first = cli.json("transfer", source, destination, "4.00", "--idempotency-key", key)
    again = cli("transfer", source, destination, "4.00", "--idempotency-key", key)
    assert first["id"] in again.stdout and "replayed" in again.stdout
    assert api.balance(source) == Decimal("6.00")


def test_no_wait_returns_at_once_and_operations_show_waits(
    cli: Cli, api: Api, database_url: str
) -> None:
    source = api.funded_wallet("10.00")
    destination = api.create_wallet()
    with wallet_queue_held(database_url, source):
        pending = cli.json("transfer", source, destination, "1.00", "--no-wait")
        assert pending["status"] == "pending"
        late = cli("transfer", source, destination, "1.00", "--timeout", "0.5", ok=False)
        assert late.returncode == 4
        assert "still pending" in error_line(late)
        shown = cli.json("operations", "show", pending["id"])
        assert shown["status"] == "pending"
    waited = cli("operations", "show", pending["id"], "--wait")
    assert "succeeded" in waited.stdout
    failed = cli.json("transfer", source, destination, "100.00", "--no-wait")
    result = cli("operations", "show", failed["id"], "--wait", ok=False)
    assert result.returncode == 1
    assert "insufficient_funds" in error_line(result)


# --- events --------------------------------------------------------------------------------


def test_events_lists_the_feed(cli: Cli, api: Api) -> None:
    account = api.create_account("Eve")
    api.funded_wallet("1.00")
    page = cli.json("events")
    assert [e["type"] for e in page["items"]][:1] == ["account.created"]
    assert page["items"][0]["data"]["id"] == account["id"]
    only = cli.json("events", "--type", "operation.succeeded")
    assert {e["type"] for e in only["items"]} == {"operation.succeeded"}
    lines = cli("events").stdout.splitlines()
    assert "account.created" in lines[0] and account["id"] in lines[0]
    bad = cli("events", "--type", "nonsense", ok=False)
    assert bad.returncode == 2  # a usage error, said before anything is asked


def test_events_follow_tails_until_ctrl_c(cli: Cli, api: Api) -> None:
    errors = cli.folder / "events.err"
    with (
        errors.open("w") as stderr,
        subprocess.Popen(
            [*PAYSYS, "events", "--follow"],
            env=cli.env,
            cwd=cli.folder,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as proc,
    ):
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in proc.stdout or []:
                lines.put(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            first = api.create_account("Tailed")
            assert first["id"] in lines.get(timeout=30)
            second = api.create_account("Tailed again")  # while it long-polls
            line = lines.get(timeout=30)
            assert "account.created" in line and second["id"] in line
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join()
    assert "Traceback" not in errors.read_text()


# --- where paysys is -----------------------------------------------------------------------


def test_commands_find_the_paysys_run_of_their_folder(stack: Stack, tmp_path: Path) -> None:
    """`paysys run` records its URL (and, with embedded servers, its development key) in
    .paysys/run.json; commands run in the folder use them when PAYSYS_URL and
    PAYSYS_API_KEY are unset. (A record like the one an embedded run writes, here.)"""
    api = make_api(stack)
    (tmp_path / ".paysys").mkdir(mode=0o700)
    key_file = tmp_path / ".paysys" / "dev-api-key"
    key_file.write_text(api.api_key + "\n")
    running.publish(stack.base_url, key_file, ["api"], 1, root=tmp_path / ".paysys")
    try:
        cli = Cli(tmp_path, None, None)
        created = cli.json("accounts", "create", "Found")
        assert api.get(f"/v1/accounts/{created['id']}").status_code == 200
        status = cli.json("status")
        assert status["url"] == stack.base_url and status["run"]["pid"] == os.getpid()
        assert (status["key_from"], status["key"]) == (str(key_file), "accepted")
        # A URL of its own: not the run's, so not the run's key either.
        elsewhere = Cli(tmp_path, f"http://127.0.0.1:{free_port()}", None)
        assert elsewhere("accounts", "list", ok=False).returncode == 2
    finally:
        running.withdraw(root=tmp_path / ".paysys")
        api.close()
    assert not (tmp_path / ".paysys" / "run.json").exists()
    assert Cli(tmp_path, None, None)("accounts", "list", ok=False).returncode == 2


def test_status_of_a_paysys_run(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    run = spawn(
        [*PAYSYS, "run", "--port", str(port)],
        env={**os.environ, **ENV.variables()},
        log=tmp_path / "run.log",
        cwd=tmp_path,
    )
    record = tmp_path / ".paysys" / "run.json"
    try:
        assert eventually(record.exists, within=60, interval=0.2), (
            tmp_path / "run.log"
        ).read_text()
        api = make_api(stack)
        cli = Cli(tmp_path, None, api.api_key)  # the URL: the run's
        shown = cli("status")
        assert f"running in {tmp_path} (pid {run.pid})" in shown.stdout
        assert f"http://127.0.0.1:{port}" in shown.stdout and "ready" in shown.stdout
        report = cli.json("status")
        assert report["ready"] is True and report["key"] == "accepted"
        assert report["run"]["services"] == ["api", "worker", "webhooks", "sweeper"]
        assert report["backlog"]["pending"] >= 0
        assert cli.json("accounts", "create", "Via the run")["name"] == "Via the run"
        api.close()
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=40) == 0
        assert not record.exists()
        stopped = cli("status", ok=False)  # (of the default URL, whatever answers there)
        assert "not running in this folder" in stopped.stdout
        assert "http://127.0.0.1:8000" in stopped.stdout
    finally:
        terminate(run, signal.SIGKILL)


# --- the demo ------------------------------------------------------------------------------


def test_demo_makes_something_of_every_kind(cli: Cli, api: Api) -> None:
    demo = cli.json("demo")
    accounts = {a["name"]: a for a in demo["accounts"]}
    assert set(accounts) == {"Alice", "Bob", "Carol", "Dave"}
    kinds = {(o["type"], o["status"]) for o in demo["operations"]}
    assert kinds >= {
        ("replenishment", "succeeded"),
        ("transfer", "succeeded"),
        ("transfer", "failed"),
        ("withdrawal", "succeeded"),
        ("hold", "succeeded"),
        ("capture", "succeeded"),
        ("void", "succeeded"),
        ("reversal", "succeeded"),
    }
    assert (demo["batch"]["status"], demo["batch"]["succeeded"]) == ("completed", 3)

    # The reads show it.
    carol = cli.json("wallets", "show", accounts["Carol"]["wallet"]["id"])
    assert (carol["wallet"]["balance"], carol["wallet"]["held"]) == ("153.25", "5.00")
    assert len(carol["postings"]["items"]) == 6
    listed = {a["name"]: a["wallet"]["balance"] for a in cli.json("accounts", "list")["items"]}
    assert listed == {"Alice": "352.25", "Bob": "234.50", "Carol": "153.25", "Dave": "40.00"}
    types = {e["type"] for e in cli.json("events", "--limit", "200")["items"]}
    assert types == {
        "account.created",
        "operation.succeeded",
        "operation.failed",
        "batch.completed",
    }

    # Again: the same keys, so nothing more is made.
    again = cli("demo")
    assert accounts["Alice"]["wallet"]["id"] in again.stdout
    assert len(cli.json("accounts", "list")["items"]) == 4
    assert api.balance(accounts["Alice"]["wallet"]["id"]) == Decimal("352.25")
