"""A webhook receiver in the test process: an HTTP server on 127.0.0.1 that records every
request, and that each path can be told to answer badly (fail its first N requests, hang,
redirect, answer a huge body); and the helpers of webhook tests (register an endpoint,
read its attempts, read a metric)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import psycopg2.extensions

from paysys.client import verify_webhook
from tests.conftest import query
from tests.helpers import Api


@dataclass
class Plan:
    """How a path answers. The first `fail_first` requests get `fail_status`, and every
    `fail_every`-th after them; the rest get `status`, after hanging `hang` seconds (or
    until the receiver closes), or a redirect, or a body of `huge` bytes."""

    fail_first: int = 0
    fail_every: int = 0
    fail_status: int = 500
    status: int = 200
    hang: float = 0.0
    hang_first: int | None = None  # hang only on the first N requests (None: all)
    redirect_to: str | None = None
    huge: int = 0
    seen: int = 0
    huge_bytes_sent: int = 0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived
    answered_at: float | None = None

    def json(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))

    @property
    def event_id(self) -> str:
        return self.headers["paysys-event-id"]


@dataclass
class Receiver:
    plans: dict[str, Plan] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, plan: Plan | None = None) -> str:
        self.plans[path] = plan or Plan()
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length", "0"))
        body = request.rfile.read(length)
        headers = {name.lower(): value for name, value in request.headers.items()}
        entry = Received(request.path, headers, body, time.monotonic())
        with self.lock:
            self.received.append(entry)
            plan = self.plans.setdefault(request.path, Plan())
            plan.seen += 1
            seen = plan.seen
        try:
            self._answer(request, plan, seen)
        except OSError:
            pass  # the sender hung up: that is its right
        entry.answered_at = time.monotonic()

    def _answer(self, request: BaseHTTPRequestHandler, plan: Plan, seen: int) -> None:
        if seen <= plan.fail_first or (plan.fail_every and seen % plan.fail_every == 0):
            request.send_response(plan.fail_status)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        if plan.hang and (plan.hang_first is None or seen <= plan.hang_first):
            self.released.wait(plan.hang)
        if plan.redirect_to is not None:
            request.send_response(302)
            request.send_header("Location", plan.redirect_to)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.send_response(plan.status)
        if plan.huge:
            request.send_header("Content-Length", str(plan.huge))
            request.end_headers()
            chunk = b"x" * 65536
            while plan.huge_bytes_sent < plan.huge:
                request.wfile.write(chunk)
                plan.huge_bytes_sent += len(chunk)
            return
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(
        self, path: str, condition: Callable[[list[Received]], bool], timeout: float = 30
    ) -> list[Received]:
        """The requests to `path` once `condition` holds of them (polled)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.at(path)
            if condition(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: condition not met in {timeout}s; got {len(got)}")
            time.sleep(0.05)

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def register(api: Api, url: str, types: list[str] | None = None) -> dict[str, Any]:
    response = api.post("/v1/webhook-endpoints", {"url": url, "event_types": types or ["*"]})
    assert response.status_code == 201, response.text
    return dict(response.json())


def attempts(db: psycopg2.extensions.connection, endpoint_id: str) -> list[tuple[Any, ...]]:
    """(event id, attempt, status code, error, delivered, created_at, next_attempt_at),
    oldest first."""
    return query(
        db,
        "SELECT event_id::text, attempt, status_code, error, delivered, created_at, "
        "next_attempt_at FROM webhook_attempt WHERE endpoint_id = %s ORDER BY id",
        endpoint_id,
    )


def wait_attempts(
    db: psycopg2.extensions.connection,
    endpoint_id: str,
    condition: Callable[[list[tuple[Any, ...]]], bool],
    timeout: float = 30,
) -> list[tuple[Any, ...]]:
    """The attempts once `condition` holds of them (polled)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = attempts(db, endpoint_id)
        if condition(rows):
            return rows
        assert time.monotonic() < deadline, f"attempts never as expected: {rows}"
        time.sleep(0.05)


def metric(base_url: str, name: str) -> float:
    """The sum of a metric's samples on /metrics (0 if absent)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_all_delivered(
    receiver: Receiver,
    path: str,
    conn: psycopg2.extensions.connection,
    tenant_id: str,
    secret: str,
    timeout: float,
) -> dict[str, Any]:
    """Wait until every event of the tenant has reached `path` at least once, as it is in
    the feed and signed with `secret`; then the figures of it."""
    with conn.cursor() as cur:
        cur.execute("SELECT id::text, type FROM event WHERE tenant_id = %s", (tenant_id,))
        events = dict(cur.fetchall())
    started = time.monotonic()
    while True:
        got = {r.event_id for r in receiver.at(path) if r.answered_at is not None}
        missing = events.keys() - got
        if not missing:
            break
        assert time.monotonic() - started < timeout, (
            f"{len(missing)} of {len(events)} events never delivered, e.g. {sorted(missing)[:3]}"
        )
        time.sleep(0.2)
    received = receiver.at(path)
    for request in received:
        event = verify_webhook(request.body, request.headers["paysys-signature"], secret)
        assert event["id"] == request.event_id and event["type"] == events[event["id"]]
    return {
        "events": len(events),
        "requests": len(received),
        "events_received_more_than_once": sum(
            1 for n in Counter(r.event_id for r in received).values() if n > 1
        ),
        "seconds_waited_once_all_final_and_checked": round(time.monotonic() - started, 2),
    }
