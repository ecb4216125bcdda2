"""PostgreSQL and Redis servers of a test's own, which it may stop, kill and restart
without disturbing anything else on the machine."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from devtools.databases import create_database, database_url, postgres_program
from devtools.processes import eventually, free_port, spawn


class PrivatePostgres:
    """A throwaway cluster on its own port. PostgreSQL refuses to run as root, so as root
    it runs as the `postgres` system user."""

    def __init__(self) -> None:
        self.bindir = postgres_program("initdb").parent
        self.root = Path(tempfile.mkdtemp(prefix="paysys-pg-"))
        self.datadir = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.root.chmod(0o755)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return database_url(self.admin_url, database)

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), *options, "-w", "-t", "60", action)

    def _server_options(self) -> list[str]:
        server = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=128MB"
        )
        return ["-o", server, "-l", str(self.log)]

    def start(self) -> None:
        self._pg_ctl("start", *self._server_options())

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        self._pg_ctl("restart", *self._server_options(), "-m", "fast")

    def create_database(self, name: str) -> str:
        return create_database(self.admin_url, name)

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """redis-server on its own port, keeping nothing on disk (like the machine's Redis):
    a restart loses every queued message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="paysys-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ]
        )
        client = redis.Redis.from_url(self.url)
        try:
            if not eventually(lambda: _answers(client), within=10, interval=0.05):
                raise TimeoutError("redis-server did not start")
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
