"""`paysys replenish-batch`, run as users run it, against the real service."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg2.extensions

from devtools.processes import free_port, run_paysys
from paysys.client import Paysys
from paysys.csv_import import chunk_key, chunks
from tests.conftest import query
from tests.helpers import Api

Conn = psycopg2.extensions.connection


def replenish_batch(api: Api, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_paysys(
        "replenish-batch",
        str(path),
        *args,
        env={
            **os.environ,
            "PAYSYS_URL": api.base_url,
            "PAYSYS_API_KEY": api.api_key,
            "COLUMNS": "120",
        },
        timeout=600,
    )


def write_csv(path: Path, wallets: list[str], rows: int, seed: int = 3) -> dict[str, Decimal]:
    rng = random.Random(seed)
    expected = {w: Decimal(0) for w in wallets}
    with path.open("w") as out:
        out.write("wallet_id,amount,reference\n")
        for n in range(rows):
            wallet = rng.choice(wallets)
            amount = Decimal(rng.randint(1, 50_000)) / 100
            expected[wallet] += amount
            out.write(f"{wallet},{amount:.2f},row {n}\n" if n % 2 else f"{wallet},{amount:.2f}\n")
    return expected


def operations_of(db: Conn, wallets: list[str]) -> int:
    return int(
        query(db, "SELECT count(*) FROM operation WHERE wallet_id = ANY(%s::uuid[])", wallets)[0][0]
    )


def test_fifty_thousand_rows_then_a_second_run_adds_nothing(
    api: Api, db: Conn, tmp_path: Path
) -> None:
    wallets = [api.create_wallet(f"C{i}") for i in range(300)]
    path = tmp_path / "topups.csv"
    expected = write_csv(path, wallets, 50_000)

    first = replenish_batch(api, path)
    assert first.returncode == 0, first.stdout + first.stderr
    summary = first.stdout.strip().splitlines()[-1]
    assert "items 50000" in summary and "succeeded 50000" in summary and "failed 0" in summary
    assert "items/s" in summary
    assert operations_of(db, wallets) == 50_000
    for wallet in random.Random(1).sample(wallets, 25):
        assert api.balance(wallet) == expected[wallet]

    second = replenish_batch(api, path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "succeeded 50000" in second.stdout
    assert "5 of 5 chunk(s) had already been accepted" in second.stdout, second.stdout
    assert operations_of(db, wallets) == 50_000  # replayed, not applied again
    assert sum((api.balance(w) for w in wallets), Decimal(0)) == sum(expected.values())


def test_a_run_cut_short_is_finished_by_the_next_without_doubling(
    api: Api, db: Conn, tmp_path: Path
) -> None:
    wallets = [api.create_wallet(f"R{i}") for i in range(20)]
    path = tmp_path / "topups.csv"
    expected = write_csv(path, wallets, 2_500)
    # What a run killed after its first chunk leaves behind: that chunk, accepted.
    first_chunk = next(chunks(path, 1_000))
    with Paysys(api.base_url, api.api_key) as client:
        first = client.create_batch(
            [row.item for row in first_chunk], idempotency_key=chunk_key(first_chunk, 0)
        ).wait()
    result = replenish_batch(api, path, "--chunk-size", "1000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 3 chunk(s) had already been accepted" in result.stdout, result.stdout
    assert first.id in result.stdout
    assert operations_of(db, wallets) == 2_500
    for wallet in wallets:
        assert api.balance(wallet) == expected[wallet]


def test_correcting_a_later_row_after_a_partial_run_applies_nothing_twice(
    api: Api, db: Conn, tmp_path: Path
) -> None:
    wallets = [api.create_wallet(f"E{i}") for i in range(5)]
    path = tmp_path / "topups.csv"
    write_csv(path, wallets, 25)
    # A run cut short after its first two chunks (of 10 rows)...
    with Paysys(api.base_url, api.api_key) as client:
        for index, chunk in enumerate(chunks(path, 10)):
            if index < 2:
                client.create_batch(
                    [row.item for row in chunk], idempotency_key=chunk_key(chunk, index)
                ).wait()
    # ...then a row of the last chunk corrected (the header is line 1: row 23 is line 24).
    lines = path.read_text().splitlines()
    lines[23] = f"{wallets[0]},123.45,corrected"
    path.write_text("\n".join(lines) + "\n")
    expected = {w: Decimal(0) for w in wallets}
    for row in (r for chunk in chunks(path, 10) for r in chunk):
        expected[row.item.wallet_id] += Decimal(str(row.item.amount))

    result = replenish_batch(api, path, "--chunk-size", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 3 chunk(s) had already been accepted" in result.stdout, result.stdout
    assert operations_of(db, wallets) == 25
    for wallet in wallets:
        assert api.balance(wallet) == expected[wallet]


def test_a_new_run_id_imports_the_same_file_again(api: Api, db: Conn, tmp_path: Path) -> None:
    wallets = [api.create_wallet(f"I{i}") for i in range(3)]
    path = tmp_path / "topups.csv"
    expected = write_csv(path, wallets, 30)
    for run_id in ("payroll-1", "payroll-2", "payroll-2"):
        result = replenish_batch(api, path, "--chunk-size", "20", "--run-id", run_id)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 chunk(s) had already been accepted" in result.stdout  # payroll-2, again
    assert operations_of(db, wallets) == 60
    for wallet in wallets:
        assert api.balance(wallet) == 2 * expected[wallet]
    assert "--run-id TEXT" in replenish_batch(api, path, "--help").stdout


def test_bad_rows_are_all_reported_and_nothing_is_submitted(
    api: Api, db: Conn, tmp_path: Path
) -> None:
    wallet = api.create_wallet()
    path = tmp_path / "bad.csv"
    path.write_text(
        f"{wallet},1.00\n"
        f"{wallet},0\n"  # line 2: zero
        "not-a-uuid,1.00\n"  # line 3
        f"{wallet},1.001\n"  # line 4
        f"{wallet},2.00,ok\n"
        f"{wallet}\n"  # line 6: too few fields
        f"{wallet},1e3\n"  # line 7
        "[bold]x[/bold],1.00\n"  # line 8: shown as written, not as console markup
    )
    result = replenish_batch(api, path)
    assert result.returncode == 2
    for line in (2, 3, 4, 6, 7, 8):
        assert f"bad.csv:{line}:" in result.stdout, result.stdout
    assert "bad.csv:1:" not in result.stdout and "bad.csv:5:" not in result.stdout
    assert "'[bold]x[/bold]' is not a UUID" in result.stdout, result.stdout
    assert "6 bad row(s); nothing was submitted" in result.stdout
    assert operations_of(db, [wallet]) == 0


def test_malformed_rows_and_unknown_wallets_are_reported_in_one_pass(
    api: Api, other_api: Api, db: Conn, tmp_path: Path
) -> None:
    mine = api.create_wallet()
    theirs = other_api.create_wallet()
    unknown = str(uuid.uuid4())
    path = tmp_path / "mixed.csv"
    lines = ["wallet_id,amount,reference"] + [f"{mine},1.00"] * 30
    lines[3] = f"{mine},-1.00"  # malformed
    lines[8] = f"{unknown},1.00"  # unknown wallet
    lines[14] = "nope,1.00"  # malformed
    lines[21] = f"{theirs},1.00"  # another tenant's wallet
    lines[27] = f"{unknown},2.00,again"  # unknown wallet, in another chunk
    path.write_text("\n".join(lines) + "\n")
    result = replenish_batch(api, path, "--chunk-size", "10")
    assert result.returncode == 2, result.stdout + result.stderr
    reported = [line for line in result.stdout.splitlines() if line.startswith(f"{path}:")]
    assert [line.split(":")[1] for line in reported] == ["4", "9", "15", "22", "28"], reported
    assert f"Wallet {unknown} not found" in reported[1] and "UUID" in reported[2]
    assert "5 bad row(s); nothing was submitted" in result.stdout
    assert operations_of(db, [mine, theirs]) == 0


def test_a_server_that_cannot_be_reached_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"{uuid.uuid4()},1.00\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_paysys(
        "replenish-batch",
        str(path),
        env={**os.environ, "PAYSYS_URL": url, "PAYSYS_API_KEY": "sk_" + "0" * 43},
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"cannot reach paysys at {url}: connection refused" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_wallets_are_reported_by_line_and_nothing_is_submitted(
    api: Api, other_api: Api, db: Conn, tmp_path: Path
) -> None:
    mine = api.create_wallet()
    theirs = other_api.create_wallet()
    path = tmp_path / "wallets.csv"
    lines = [f"{mine},1.00"] * 30
    lines[12] = f"{uuid.uuid4()},1.00"
    lines[25] = f"{theirs},1.00"
    path.write_text("\n".join(lines) + "\n")
    result = replenish_batch(api, path, "--chunk-size", "10")
    assert result.returncode == 2, result.stdout
    assert "wallets.csv:13:" in result.stdout and "wallets.csv:26:" in result.stdout
    assert operations_of(db, [mine, theirs]) == 0


def test_missing_api_key_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PAYSYS_API_KEY"}
    result = run_paysys("replenish-batch", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "PAYSYS_API_KEY" in result.stderr


def test_a_refused_api_key_is_one_clear_line(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"{api.create_wallet()},1.00\n")
    result = run_paysys(
        "replenish-batch",
        str(path),
        env={**os.environ, "PAYSYS_URL": api.base_url, "PAYSYS_API_KEY": "sk_" + "0" * 43},
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"paysys at {api.base_url} refused a request: 401 unauthorized" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
