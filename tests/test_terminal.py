"""What a person at a terminal sees: readable log lines there (JSON anywhere else, or as
configured), no library chatter, and `paysys run` saying where things are only once they
are up."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devtools.processes import (
    PAYSYS,
    descendants,
    eventually,
    free_port,
    kill_all,
    living,
    terminate,
)
from paysys.readiness import Readiness
from tests.conftest import ENV
from tests.stack import clear_redis_prefix

PROBE = """
import logging, warnings
from paysys import logs
logs.configure("probe")
logging.getLogger("paysys.probe").info("hello", extra={"request_id": "r-1", "tenant_id": None})
logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")
logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001, The ledger")
logging.getLogger("uvicorn.error").info("Waiting for application startup.")
logging.getLogger("uvicorn.error").warning("something uvicorn wants said")
warnings.warn("a library's warning", UserWarning, stacklevel=1)
"""
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (INFO|WARNING) +probe +\S+: .+$")


def environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PAYSYS_LOG_FORMAT"}
    return {**env, **settings}


def on_a_terminal(command: list[str], env: dict[str, str]) -> str:
    """Run `command` with its output on a pseudo-terminal; what it wrote there."""
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert proc.wait(timeout=30) == 0, output
    return output.decode().replace("\r\n", "\n")


def piped(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stderr


def probe(tty: bool, **settings: str) -> list[str]:
    command = [sys.executable, "-c", PROBE]
    env = environment(**settings)
    output = on_a_terminal(command, env) if tty else piped(command, env)
    return [line for line in output.splitlines() if line.strip()]


def test_a_terminal_gets_readable_lines() -> None:
    lines = probe(tty=True)
    assert all(TEXT_LINE.match(line) for line in lines), lines
    assert lines[0].endswith("paysys.probe: hello  request_id=r-1")  # None extras left out


def test_a_pipe_gets_json_lines() -> None:
    lines = [json.loads(line) for line in probe(tty=False)]
    assert lines[0]["message"] == "hello" and lines[0]["request_id"] == "r-1"
    assert {"time", "level", "process", "logger", "message"} <= set(lines[0])


def test_the_setting_chooses_over_the_terminal() -> None:
    assert all(line.startswith("{") for line in probe(tty=True, PAYSYS_LOG_FORMAT="json"))
    lines = probe(tty=False, PAYSYS_LOG_FORMAT="text")
    assert all(TEXT_LINE.match(line) for line in lines), lines


def test_library_chatter_is_left_out_and_warnings_kept() -> None:
    messages = [json.loads(line)["message"] for line in probe(tty=False)]
    assert not any("setup plugin" in m or "Context impl" in m for m in messages), messages
    assert "Waiting for application startup." not in messages
    assert "Running upgrade  -> 0001, The ledger" in messages  # what the user asked for
    assert "something uvicorn wants said" in messages
    assert any("a library's warning" in m for m in messages)  # a log line, not raw stderr


class Probe(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        self.send_response(Probe.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_readiness_waits_for_the_api_and_every_worker(readyz: str) -> None:
    announced: list[float] = []
    ready = Readiness(readyz, ["worker", "webhooks"], announced.append)
    Probe.status = 200
    os.write(ready.fd, b"worker\nwebho")  # a name may come in pieces
    ready.check()
    assert announced == []  # the webhooks worker has not said it is ready
    Probe.status = 503
    os.write(ready.fd, b"oks\n")
    ready.check()
    assert announced == []  # the API is not ready
    Probe.status = 200
    ready.check()
    ready.check()
    assert len(announced) == 1


def test_run_on_a_terminal(database_url: str) -> None:
    """`paysys run` as typed at a terminal: readable lines, no Celery banner nor warning,
    and where things are said once the API answers and both workers consume."""
    port = free_port()
    prefix = f"paysys-test-run-{uuid.uuid4().hex[:8]}"
    own = {"PAYSYS_REDIS_PREFIX": prefix, "PAYSYS_CELERY_QUEUE": prefix}
    env = environment(**{**ENV.variables(), **own})
    env.pop("PAYSYS_METRICS_DIR")  # a directory of its own, as a user's run has
    main, terminal = pty.openpty()
    run = subprocess.Popen(
        [*PAYSYS, "run", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    screen: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.append(chunk)

    def text() -> str:
        return b"".join(screen).decode(errors="replace").replace("\r\n", "\n")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    children: set[int] = set()
    try:
        assert eventually(lambda: "paysys is up" in text(), within=90, interval=0.05), text()
        # At once: the API answers, and both workers have said they are ready.
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert eventually(lambda: text().count(" ready.") >= 2, within=5), text()
        banner = text()[text().index("paysys is up") :]
        assert f"API on http://127.0.0.1:{port}" in banner
        assert f"http://127.0.0.1:{port}/docs" in banner and "/console" in banner

        shown = text()
        assert "-------------- celery@" not in shown and "[tasks]" not in shown
        assert "SecurityWarning" not in shown and "superuser" not in shown
        assert "setup plugin" not in shown and "Connected to redis" not in shown
        logged = [line for line in shown.splitlines() if re.match(r"\d\d:\d\d:\d\d\.", line)]
        assert logged and not any(line.startswith("{") for line in shown.splitlines())

        children = descendants(run.pid)
        run.send_signal(signal.SIGINT)  # Ctrl-C
        assert run.wait(timeout=40) == 0
        assert eventually(lambda: not living(children), within=10, interval=0.2)
    finally:
        terminate(run, signal.SIGKILL)
        kill_all(children, signal.SIGKILL)
        os.close(main)
        reader.join(timeout=5)
        clear_redis_prefix(prefix)
