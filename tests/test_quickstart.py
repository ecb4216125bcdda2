"""`paysys run` with nothing configured: embedded PostgreSQL and Redis under ./.paysys/,
a transfer through the API, a clean stop with no process left, and the data still there
after a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from devtools.processes import (
    PAYSYS,
    alive,
    cmdline,
    descendants,
    eventually,
    free_port,
    living,
    parents,
    run_paysys,
    spawn,
    terminate,
    wait_ready,
)
from tests.helpers import Api


def clean_env() -> dict[str, str]:
    """The environment of someone who configured nothing."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("PAYSYS_")
    }


def processes_of(folder: Path) -> list[int]:
    """Every live process whose command line names the folder, or that works in it or in
    its PostgreSQL data directory (which, as root, is a link to /var/lib/paysys): the
    embedded servers."""
    places = [str(folder)]
    pgdata = folder / ".paysys" / "pgdata"
    if pgdata.is_symlink():
        places.append(os.readlink(pgdata))
    found = []
    for pid in parents():
        command = cmdline(pid)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        named = any(place in command or cwd.startswith(place) for place in places)
        if named and alive(pid):
            found.append(pid)
    return found


def all_gone(folder: Path, children: set[int]) -> bool:
    """Whether the children of a `paysys run` in `folder`, and its embedded servers, are
    all gone."""
    return not living(children) and not processes_of(folder)


def forget(folder: Path) -> None:
    """Remove what a folder's embedded servers keep outside it (as root)."""
    pgdata = folder / ".paysys" / "pgdata"
    if pgdata.is_symlink():
        shutil.rmtree(Path(os.readlink(pgdata)).parent, ignore_errors=True)


def paysys_in(
    folder: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`python -m paysys ARGS` in `folder`, with nothing configured (but `env`)."""
    return run_paysys(
        *args, env={**clean_env(), **(env or {})}, cwd=folder, timeout=timeout, check=check
    )


def first_words(folder: Path, args: list[str], awaited: str, timeout: float = 30) -> str:
    """What `paysys ARGS`, a service started alone in `folder`, says until it says
    `awaited`; then it is stopped (with whatever it started)."""
    output = folder / f"{args[0]}.out"
    proc = spawn([*PAYSYS, *args], env=clean_env(), log=output, cwd=folder, own_group=True)
    try:
        deadline = time.monotonic() + timeout
        while awaited not in output.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
    finally:
        terminate(proc, signal.SIGTERM, 15, group=True)
    return output.read_text()


class Run:
    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.output = folder / f"run-{self.port}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = spawn(
            [*PAYSYS, "run", "--port", str(self.port)],
            env=clean_env(),
            log=self.output,
            cwd=self.folder,
        )
        wait_ready(self.url, timeout=120)
        # Where things are is printed once the API is ready and the workers consume.
        eventually(lambda: "paysys is up" in self.output.read_text(), within=60, interval=0.2)

    def stop(self, signum: int = signal.SIGINT) -> int:
        assert self.proc is not None
        children = descendants(self.proc.pid)
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=60)
        eventually(lambda: all_gone(self.folder, children), within=15, interval=0.2)
        assert not living(children), "children left behind"
        assert processes_of(self.folder) == [], "embedded servers left behind"
        return code


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for pid in processes_of(tmp_path):  # whatever a failed test left running
        os.kill(pid, signal.SIGKILL)
    forget(tmp_path)


def test_run_with_nothing_configured(folder: Path) -> None:
    first = Run(folder)
    first.start()
    out = first.output.read_text()
    assert f"API on {first.url}" in out and f"{first.url}/docs" in out
    key = (folder / ".paysys" / "dev-api-key").read_text().strip()
    assert key in out  # printed on the first start
    assert (folder / ".paysys" / "pgdata" / "PG_VERSION").exists()
    # The client commands run in the folder find its URL and development key.
    status = json.loads(paysys_in(folder, "status", "--json", timeout=60, check=True).stdout)
    assert (status["url"], status["key"]) == (first.url, "accepted")
    assert Path(status["key_from"]).samefile(folder / ".paysys" / "dev-api-key")

    api = Api(first.url, key)
    source = api.funded_wallet("30.00", "Alice")
    destination = api.create_wallet("Bob")
    operation = api.transfer(source, destination, "12.50").json()["id"]
    assert api.wait(operation)["status"] == "succeeded"
    api.close()

    # A second `paysys run` in the same folder says so and starts nothing.
    second = paysys_in(folder, "run", "--port", str(free_port()), timeout=60)
    assert second.returncode != 0
    assert "already running" in second.stderr
    # Other commands in the folder use the running servers, and say so.
    keys = paysys_in(folder, "api-keys", "list", "dev", timeout=60, check=True)
    assert key[:10] in keys.stdout
    assert first.proc is not None
    attached = f"using the embedded PostgreSQL and Redis of the paysys run in {folder} "
    assert f"{attached}(pid {first.proc.pid})" in keys.stderr
    for service in (["api", "--port", str(free_port())], ["worker"], ["sweeper"]):
        said = first_words(folder, service, attached)
        assert f"{attached}(pid {first.proc.pid})" in said, said

    assert first.stop(signal.SIGINT) == 0
    assert not (folder / ".paysys" / "run.json").exists()

    # Restarted, with the data still there; the key is not printed again.
    again = Run(folder)
    again.start()
    assert key not in again.output.read_text()
    api = Api(again.url, key)
    assert api.balance(source) == Decimal("17.50")
    assert api.balance(destination) == Decimal("12.50")
    assert api.operation(operation)["status"] == "succeeded"
    api.close()
    assert again.stop(signal.SIGTERM) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{again.url}/healthz", timeout=2)


def test_commands_start_embedded_servers_for_their_own_duration(folder: Path) -> None:
    result = paysys_in(folder, "api-keys", "create", "me")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("sk_")
    audit = paysys_in(folder, "audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    time.sleep(0.5)
    assert processes_of(folder) == []


def test_half_configured_is_refused(folder: Path) -> None:
    result = paysys_in(
        folder, "audit", env={"DATABASE_URL": "postgresql://127.0.0.1/x"}, timeout=60
    )
    assert result.returncode == 2
    assert "both DATABASE_URL and REDIS_URL" in result.stderr


def test_run_as_an_unprivileged_user(tmp_path: Path) -> None:
    """PostgreSQL refuses to run as root, so as root pgserver runs it as a system user of
    its own; as anyone else it runs as that user. Run as root here (as in CI), this test
    installs paysys for `nobody` with the system's Python and runs the quickstart as
    `nobody`; run as anyone else, it runs it as that user."""
    as_root = os.geteuid() == 0
    home = tmp_path / "home"
    folder = home / "quickstart"
    folder.mkdir(parents=True)
    python = sys.executable
    prefix: list[str] = []
    if as_root:
        source = home / "src"
        root = Path(__file__).parent.parent
        shutil.copytree(
            root,
            source,
            ignore=shutil.ignore_patterns(
                ".venv", ".git", ".paysys", "*.egg-info", "__pycache__", "build", "bench"
            ),
        )
        subprocess.run(["chown", "-R", "nobody", str(tmp_path)], check=True)
        tmp_path.chmod(0o755)
        for parent in tmp_path.parents:  # let nobody reach its folder
            parent.chmod(parent.stat().st_mode | 0o005)
        prefix = ["runuser", "-u", "nobody", "--", "env", f"HOME={home}"]
        venv = home / "venv"
        subprocess.run([*prefix, "/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [*prefix, str(venv / "bin" / "pip"), "install", "-q", str(source)],
            check=True,
            timeout=900,
        )
        python = str(venv / "bin" / "python")
    port = free_port()
    proc = spawn(
        [*prefix, python, "-m", "paysys", "run", "--port", str(port)],
        env=clean_env(),
        log=tmp_path / "run.out",
        cwd=folder,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=120)
        key = (folder / ".paysys" / "dev-api-key").read_text().strip()
        api = Api(f"http://127.0.0.1:{port}", key)
        wallet = api.funded_wallet("9.99")
        assert api.balance(wallet) == Decimal("9.99")
        api.close()
        owner = (folder / ".paysys" / "pgdata").stat().st_uid
        assert owner != 0  # PostgreSQL's data is never root's
        children = descendants(proc.pid)
        # Ctrl-C to `paysys run` itself (under runuser, proc is runuser).
        os.kill(int((folder / ".paysys" / "run.lock").read_text()), signal.SIGINT)
        proc.wait(timeout=60)
        eventually(lambda: all_gone(folder, children), within=15, interval=0.2)
        assert processes_of(folder) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in processes_of(folder):
            os.kill(pid, signal.SIGKILL)
