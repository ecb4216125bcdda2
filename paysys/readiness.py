"""When `paysys run` is really up: the API answers /readyz and every Celery worker it
started is consuming its queue. Only then does it print where things are.

The workers say so on a pipe that `paysys run` hands them (`--ready-fd`): each writes its
name once Celery is ready (its `worker_ready` signal, when it also logs "ready."). A pipe
rather than asking Celery (a broadcast ping would be answered by any worker sharing the
Redis and its prefix, such as another installation's) or reading the children's output
(which goes straight to the terminal).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

log = logging.getLogger("paysys.run")


class Readiness:
    """Checked by the supervisor between its rounds; calls `announce` once, when the API
    at `base_url` is ready and each of `workers` has said it is."""

    def __init__(
        self,
        base_url: str,
        workers: Iterable[str],
        announce: Callable[[float], None],
        patience: float = 60.0,
    ):
        self.url = f"{base_url}/readyz"
        self.waiting = set(workers)
        self.announce = announce
        self.api_ready = False
        self.started = time.monotonic()
        self.patience = patience
        self.done = False
        self._read, self.fd = os.pipe()  # `fd`: the end the workers write to
        os.set_blocking(self._read, False)
        self._heard = b""

    def check(self) -> None:
        if self.done:
            return
        self._hear()
        # The API is asked once the workers are up (they start in about the same time):
        # each probe before its start would wait in the socket's backlog, and be answered
        # and logged later, for nobody.
        if not self.api_ready and not self.waiting:
            try:
                self.api_ready = httpx.get(self.url, timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
        waited = time.monotonic() - self.started
        if self.api_ready and not self.waiting:
            self.done = True
            os.close(self._read)  # a worker started again later writes to nobody
            os.close(self.fd)
            self.announce(waited)
        elif waited > self.patience:
            missing = sorted(self.waiting) + ([] if self.api_ready else ["api (/readyz)"])
            log.warning("not ready after %.0f s; waiting for %s", waited, ", ".join(missing))
            self.patience *= 2

    def _hear(self) -> None:
        try:
            self._heard += os.read(self._read, 4096)
        except BlockingIOError:
            return
        *names, self._heard = self._heard.split(b"\n")
        self.waiting -= {name.decode() for name in names}


def tell_when_ready(fd: int, name: str) -> None:
    """In a Celery worker's process: write `name` on `fd` when the worker is ready."""
    from celery.signals import worker_ready

    def _ready(**_: Any) -> None:
        try:
            os.write(fd, f"{name}\n".encode())
            os.close(fd)
        except OSError:
            pass  # nobody listens any more (`paysys run` already said it is up)

    worker_ready.connect(_ready, weak=False)
