"""Graceful shutdown of the API: SIGTERM stops accepting, and requests in flight (long
polls included) are answered rather than dropped."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from devtools.processes import free_port, wait_ready
from tests.conftest import Stack
from tests.helpers import Api, hold_wallet_queue
from tests.stack import Service


def test_sigterm_answers_in_flight_long_polls_then_exits(
    stack: Stack, api: Api, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    second = Service("api-2", ["api", "--port", str(port)], stack.env, tmp_path)
    second.start()
    release, held = threading.Event(), threading.Event()
    wallet = api.create_wallet()
    holder = threading.Thread(target=hold_wallet_queue, args=(database_url, wallet, release, held))
    holder.start()
    stack_clients: list[Api] = []
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        assert held.wait(10)
        operation = api.replenish(wallet, "1.00").json()  # stays pending: its queue is held
        client = Api(f"http://127.0.0.1:{port}", api.api_key)
        stack_clients.append(client)
        answers: list[httpx.Response] = []
        poll = threading.Thread(
            target=lambda: answers.append(
                client.get(f"/v1/operations/{operation['id']}", params={"wait": 25})
            )
        )
        poll.start()
        time.sleep(1)  # the poll is waiting inside the API
        started = time.monotonic()
        second.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        poll.join(15)
        assert not poll.is_alive()
        assert time.monotonic() - started < 5, "the long poll held up the shutdown"
        [answer] = answers
        assert answer.status_code == 200
        assert answer.json()["status"] == "pending"
        assert second.proc.wait(timeout=15) == 0  # type: ignore[union-attr]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        for opened in stack_clients:
            opened.close()
        release.set()
        holder.join()
        second.stop()
    assert api.wait(operation["id"])["status"] == "succeeded"
