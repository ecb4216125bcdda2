"""The folder ./.paysys: private to its owner, with the lock that `paysys run` holds and
the addresses of its servers for the other commands run in the folder."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(".paysys")


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


class Folder:
    def __init__(self, root: Path = ROOT):
        self.root = root.resolve()
        self._lock: IO[str] | None = None
        self._published = False

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

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

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

    def publish(self, addresses: Addresses) -> None:
        """Tell the other commands of the folder where the servers are."""
        write_private(
            self.root / "servers.json",
            json.dumps({"database_url": addresses.database_url, "redis_url": addresses.redis_url}),
        )
        self._published = True

    def unpublish(self) -> None:
        if self._published:
            (self.root / "servers.json").unlink(missing_ok=True)
            self._published = False

    @contextmanager
    def servers_lock(self) -> Iterator[None]:
        """Held while PostgreSQL is started or stopped: commands of one folder share it,
        and must not see it half-started, nor start it while another stops it."""
        with (self.root / "servers.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
