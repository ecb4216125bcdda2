"""`Embedded`: the folder's PostgreSQL and Redis together, as the commands use them (see
the package's docstring for who starts and stops what)."""

from __future__ import annotations

from pathlib import Path

from paysys.embedded.folder import (
    ROOT,
    Addresses,
    AlreadyRunning,
    Folder,
    RunningServers,
)
from paysys.embedded.postgresql import EmbeddedPostgres
from paysys.embedded.redis_server import EmbeddedRedis

__all__ = ["Addresses", "AlreadyRunning", "Embedded", "RunningServers"]


class Embedded:
    def __init__(self, root: Path = ROOT):
        self.folder = Folder(root)
        self.root = self.folder.root
        self._postgres = EmbeddedPostgres(self.root)
        self._redis = EmbeddedRedis(self.root)

    def lock(self) -> None:
        """Take the folder for `paysys run`, or raise AlreadyRunning."""
        self.folder.lock()

    def running(self) -> RunningServers | None:
        """The servers of a `paysys run` running in this folder, if there is one."""
        return self.folder.running()

    def start(self, *, publish: bool = False) -> Addresses:
        """Start (or, for PostgreSQL, join) the servers; `publish` their addresses for the
        other commands of the folder. On failure, whatever was started is stopped."""
        self.folder.prepare()
        try:
            with self.folder.servers_lock():
                database_url = self._postgres.start()
            redis_url = self._redis.start()
        except BaseException:
            self.stop()
            raise
        addresses = Addresses(database_url, redis_url)
        if publish:
            self.folder.publish(addresses)
        return addresses

    def stop(self) -> None:
        """Stop what this started, Redis first, and let go of the folder."""
        self.folder.unpublish()
        self._redis.stop()
        if self._postgres.started:
            with self.folder.servers_lock():
                self._postgres.stop()
        self.folder.unlock()
