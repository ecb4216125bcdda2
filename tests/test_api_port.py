"""A port already in use: `paysys api` and `paysys run` say which, and how to choose
another, and exit at once (they used to log the bind error and hang)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.processes import descendants, kill_all
from tests.test_quickstart import clean_env


@pytest.mark.parametrize(
    ("command", "embedded", "by_variable"),
    [
        pytest.param("api", False, False, id="api"),
        pytest.param("run", False, True, id="run"),
        pytest.param("run", True, False, id="run-embedded"),
    ],
)
def test_a_port_in_use_is_said_at_once(
    tmp_path: Path, command: str, embedded: bool, by_variable: bool
) -> None:
    # conftest puts the test database's DATABASE_URL and REDIS_URL in the environment.
    env = clean_env() if embedded else dict(os.environ)
    assert embedded or ("DATABASE_URL" in env and "REDIS_URL" in env)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        args = [sys.executable, "-m", "paysys", command]
        if by_variable:
            env["PAYSYS_API_PORT"] = str(port)
        else:
            args += ["--port", str(port)]
        started = time.monotonic()
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            # Hung: stop it and all it started (`paysys run`'s children lead groups of
            # their own), then fail.
            kill_all({proc.pid, *descendants(proc.pid)}, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"paysys {command} still running after {time.monotonic() - started:.0f}s")
    assert proc.returncode != 0
    assert f"127.0.0.1:{port}" in stderr
    assert "--port" in stderr and "PAYSYS_API_PORT" in stderr
    assert "API on" not in stdout  # `paysys run`: no banner, nothing started
    if embedded:
        assert not (tmp_path / ".paysys" / "pgdata").exists()
