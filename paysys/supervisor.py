"""`paysys run`: migrations, then the API, a worker, the webhook senders and the sweeper as
child processes.

Ctrl-C, SIGTERM or SIGHUP stops every child: SIGTERM, then, after a grace period, SIGKILL
to the child's whole process group (each child leads one, with everything it starts: a
worker's Celery process and its pool), so that nothing is left behind even if a child
hangs. If a child dies on its own, the others are stopped too and `paysys run` exits
non-zero: a half-running system that looks healthy is worse than a stopped one.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("paysys.run")


def _spawn(
    *args: str, own_group: bool = False, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "paysys", *args],
        process_group=0 if own_group else None,
        pass_fds=pass_fds,
    )


def supervise(
    children: dict[str, list[str]],
    grace_seconds: float = 15.0,
    *,
    pass_fds: tuple[int, ...] = (),
    every_round: Callable[[], None] | None = None,
) -> int:
    """Run the children until a signal or the death of one; `pass_fds` are inherited by
    every child, `every_round` is called between checks (twice a second)."""
    stop = threading.Event()

    def _on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)

    procs = {
        name: _spawn(*args, own_group=True, pass_fds=pass_fds) for name, args in children.items()
    }
    exit_code = 0
    try:
        while not stop.is_set():
            for name, proc in procs.items():
                code = proc.poll()
                if code is not None:
                    log.error("%s exited with code %s; stopping everything", name, code)
                    exit_code = 1
                    stop.set()
                    break
            if every_round is not None and not stop.is_set():
                every_round()
            stop.wait(0.5)
    finally:
        _stop_all(procs, grace_seconds)
    return exit_code


def _stop_all(procs: dict[str, subprocess.Popen[bytes]], grace_seconds: float) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning(
                "%s did not stop in %ss; killing it and what it started", name, grace_seconds
            )
            _kill_group(proc.pid)
            proc.wait()
    for proc in procs.values():
        _kill_group(proc.pid)  # anything a child started and left behind


def _kill_group(pgid: int) -> None:
    # The group's id stays reserved while any process is in it: this cannot hit a stranger.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def keep_alive(args: list[str], name: str, pass_fds: tuple[int, ...] = ()) -> int:
    """Run `paysys <args>` and start it again whenever it dies on its own.

    Celery's worker can exit on an "unrecoverable" error after losing its broker (a race in
    kombu when a channel is closed during a Redis restart); a worker must come back by
    itself. SIGTERM or SIGINT is passed on, and then this exits with the child's code.
    """
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def _on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = _spawn(*args, pass_fds=pass_fds)
        code = child.wait()
        if stop.is_set():
            return code
        if time.monotonic() - started > 60:
            backoff = 1.0  # it had been running fine: a new failure, not a crash loop
        log.error("%s exited with code %s; starting it again in %.0fs", name, code, backoff)
        if stop.wait(backoff):
            return code
        backoff = min(backoff * 2, 30.0)
