"""Starting, waiting for and stopping the processes of a development run (paysys itself,
and the PostgreSQL and Redis a test keeps to itself), and reading the process table from
/proc. Linux only."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

# paysys as a user of this checkout runs it, with the interpreter of the caller (the
# virtualenv's), whatever `paysys` on PATH may be.
PAYSYS = (sys.executable, "-m", "paysys")

# Resolved once, here: between fork and exec (where `die_with_parent` runs, possibly while
# other threads of this process hold locks) nothing should load or import anything.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: be sent SIGTERM when the process that started it dies
    (killed, say), rather than live on as an orphan (Linux)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_paysys(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`python -m paysys ARGS` to its end, its output captured as text. `env` is the whole
    environment (default: this process's)."""
    return subprocess.run(
        [*PAYSYS, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    append: bool = False,
    cwd: Path | None = None,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command`, its output and errors in the file `log` (default: discarded).

    It dies with the thread that starts it (`die_with_parent`), so a killed test run or
    benchmark leaves no server behind: start it from the main thread. With `own_group` it
    leads a process group of its own, so that `signal_group` reaches all it starts."""
    if log is None:
        return _popen(command, env, subprocess.DEVNULL, cwd, own_group)
    with log.open("ab" if append else "wb") as out:
        return _popen(command, env, out, cwd, own_group)


def _popen(
    command: Sequence[str],
    env: Mapping[str, str] | None,
    out: int | IO[bytes],
    cwd: Path | None,
    own_group: bool,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        env=env,
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
        preexec_fn=die_with_parent,
    )


def terminate(
    proc: subprocess.Popen[bytes],
    signum: int = signal.SIGTERM,
    timeout: float = 20,
    *,
    group: bool = False,
) -> int:
    """Send `signum` to `proc` and give it `timeout` seconds to exit, then kill it. With
    `group` (it was spawned with `own_group`), what is left of its process group is killed
    at the end as well: whatever it started and did not stop."""
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if group:
                signal_group(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait()
    if group:
        signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def signal_group(pid: int, signum: int) -> None:
    """`signum` to the process group that `pid` leads, if any of it is left."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def kill_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


# --- waiting -----------------------------------------------------------------------------


def eventually(condition: Callable[[], bool], within: float, interval: float = 0.1) -> bool:
    """Whether `condition` holds at some check within `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_ready(base_url: str, timeout: float = 30, interval: float = 0.1) -> None:
    """Wait until the paysys API at `base_url` says it is ready to serve."""

    def ready() -> bool:
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if not eventually(ready, timeout, interval):
        raise TimeoutError(f"{base_url} never became ready")


# --- the process table -------------------------------------------------------------------


def parents() -> dict[int, int]:
    """Every process's parent, by process id."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = int(fields[1])
    return table


def children(pid: int) -> set[int]:
    return {child for child, parent in parents().items() if parent == pid}


def descendants(pid: int) -> set[int]:
    table = parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        below = {child for child, parent in table.items() if parent in frontier}
        frontier = below - found
        found |= below
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs: it exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def living(pids: Iterable[int]) -> list[int]:
    return [pid for pid in pids if alive(pid)]


def cmdline(pid: int) -> str:
    """The command line of `pid`, its arguments separated by spaces; "" once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")
