"""The Python client's retries after a network error (`paysys.client.http`), against a
server of the test's own that answers after the client's timeout: a request that may
have been acted on is retried only if doing it twice changes nothing (an
Idempotency-Key, a read, a call idempotent by nature), and any request that never left
is retried."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from paysys.client import Paysys

ENDPOINT_ID = "0191a1c2-0000-7000-8000-00000000beef"
ENDPOINT = {
    "id": ENDPOINT_ID,
    "url": "https://example.com/hooks",
    "event_types": ["*"],
    "description": None,
    "created_at": "2026-12-02T10:00:00Z",
    "status": "enabled",
    "disabled_reason": None,
}
ACCOUNT = {
    "id": "0191a1c2-0000-7000-8000-00000000aaaa",
    "name": "Alice",
    "created_at": "2026-12-02T10:00:00Z",
    "wallet": {
        "id": "0191a1c2-0000-7000-8000-00000000bbbb",
        "account_id": "0191a1c2-0000-7000-8000-00000000aaaa",
        "currency": "USD",
        "balance": "0.00",
        "held": "0.00",
        "available": "0.00",
        "updated_at": "2026-12-02T10:00:00Z",
    },
}


@dataclass
class SlowServer:
    """Answers `status` with `body` to every request, the first `slow` of them after
    `delay` seconds; records each request's method, path and Idempotency-Key."""

    body: dict[str, Any]
    status: int = 201
    slow: int = 10**6
    delay: float = 1.0
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                with lock:
                    server.seen.append(
                        (self.command, self.path, self.headers.get("Idempotency-Key"))
                    )
                    n = len(server.seen)
                if n <= server.slow:
                    time.sleep(server.delay)
                body = json.dumps(server.body).encode()
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up

            do_GET = do_POST = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers() -> Iterator[list[SlowServer]]:
    made: list[SlowServer] = []
    yield made
    for server in made:
        server.close()


def client(server: SlowServer) -> Paysys:
    return Paysys(server.url, "key", timeout=0.3, retries=3, max_retry_wait=10)


def test_a_registration_is_not_sent_twice_after_a_timeout(servers: list[SlowServer]) -> None:
    """The server commits the endpoint and answers after the client's timeout: a retry
    would register a second endpoint."""
    server = SlowServer(ENDPOINT | {"secret": "whsec_x"})
    servers.append(server)
    with client(server) as paysys, pytest.raises(httpx.ReadTimeout):
        paysys.create_webhook_endpoint("https://example.com/hooks")
    time.sleep(1.5)  # as long as a retry would take to arrive
    assert [(method, path) for method, path, _ in server.seen] == [
        ("POST", "/v1/webhook-endpoints")
    ]


def test_what_may_be_done_twice_is_retried_after_a_timeout(servers: list[SlowServer]) -> None:
    endpoint = SlowServer(ENDPOINT, status=200, slow=1)
    account = SlowServer(ACCOUNT, slow=1)
    servers += [endpoint, account]
    with client(endpoint) as paysys:
        assert paysys.get_webhook_endpoint(ENDPOINT_ID).id == ENDPOINT_ID  # a read
        assert paysys.enable_webhook_endpoint(ENDPOINT_ID).status == "enabled"  # by nature
    assert [method for method, _, _ in endpoint.seen] == ["GET", "GET", "POST"]
    with client(account) as paysys:
        assert paysys.create_account("Alice").id == ACCOUNT["id"]  # an Idempotency-Key
    [(_, _, first), (_, _, second)] = account.seen
    assert first is not None and first == second


def test_a_request_that_never_left_is_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(201, json=ENDPOINT | {"secret": "whsec_x"})

    with Paysys(
        "http://paysys.test", "key", retries=3, transport=httpx.MockTransport(handler)
    ) as paysys:
        created = paysys.create_webhook_endpoint("https://example.com/hooks")
    assert created.id == ENDPOINT_ID and len(calls) == 2
