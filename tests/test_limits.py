"""Body size and per-key rate limits, on API processes configured for them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.processes import free_port, wait_ready
from tests.conftest import Stack
from tests.helpers import Api, assert_problem, new_key
from tests.private_servers import PrivateRedis
from tests.stack import Service

RATE = "5/second"


class LimitedApi:
    """API processes of their own: a 2 kB body limit, 5 requests/second per key, and a
    Redis of their own (so a test can stop it)."""

    def __init__(self, stack: Stack, log_dir: Path, processes: int = 2):
        self.redis = PrivateRedis()
        self.redis.start()
        self.ports = [free_port() for _ in range(processes)]
        env = {
            **stack.env,
            "REDIS_URL": self.redis.url,
            "PAYSYS_MAX_BODY_BYTES": "2048",
            "PAYSYS_RATE_LIMIT": RATE,
        }
        self.services = [
            Service(f"limited-api-{n}", ["api", "--port", str(port)], env, log_dir)
            for n, port in enumerate(self.ports)
        ]
        for service in self.services:
            service.start()
        for port in self.ports:
            wait_ready(self.url(port))

    @staticmethod
    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for service in self.services:
            service.stop()
        self.redis.destroy()


@pytest.fixture
def limited(stack: Stack, tmp_path: Path) -> Iterator[LimitedApi]:
    apis = LimitedApi(stack, tmp_path)
    yield apis
    apis.stop()


def _client(limited: LimitedApi, api: Api, index: int = 0) -> httpx.Client:
    return httpx.Client(
        base_url=limited.url(limited.ports[index]),
        timeout=10,
        headers={"Authorization": f"Bearer {api.api_key}"},
    )


def test_oversized_bodies_are_refused_before_parsing(limited: LimitedApi, api: Api) -> None:
    wallet = api.create_wallet()
    with _client(limited, api) as http:
        big = {"amount": "1.00", "reference": "x" * 255, "padding": "y" * 4000}
        response = http.post(
            f"/v1/wallets/{wallet}/replenishments", json=big, headers={"Idempotency-Key": new_key()}
        )
        assert_problem(response, 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
            yield b'{"amount": "1.00", "reference": "'
            for _ in range(10):
                yield b"z" * 500
            yield b'"}'

        response = http.post(
            f"/v1/wallets/{wallet}/replenishments",
            content=chunks(),
            headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"},
        )
        assert_problem(response, 413, "payload_too_large")

        def small() -> Iterator[bytes]:
            yield b'{"amount": '
            yield b'"1.00"}'

        accepted = http.post(
            f"/v1/wallets/{wallet}/replenishments",
            content=small(),
            headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"},
        )
        assert accepted.status_code == 202, accepted.text
    assert api.wait(accepted.json()["id"])["status"] == "succeeded"
    assert api.balance(wallet) == 1  # the refused ones moved nothing


def test_rate_limit_per_key_with_headers_and_retry_after(
    limited: LimitedApi, api: Api, other_api: Api
) -> None:
    with _client(limited, api) as http, _client(limited, other_api) as other:
        time.sleep(1.1)  # a full bucket
        answers = [http.get("/v1/accounts") for _ in range(8)]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [200] * 5, statuses
        assert 429 in statuses[5:]
        ok, limited_answer = answers[0], answers[statuses.index(429)]
        assert ok.headers["RateLimit-Limit"] == "5"
        assert int(ok.headers["RateLimit-Remaining"]) == 4
        assert "RateLimit-Reset" in ok.headers
        body = assert_problem(limited_answer, 429, "rate_limited")
        assert body["detail"]
        assert int(limited_answer.headers["Retry-After"]) >= 1
        assert limited_answer.headers["RateLimit-Remaining"] == "0"
        # Another key has its own bucket.
        assert other.get("/v1/accounts").status_code == 200
        # Health, readiness and metrics are never limited (nor need a key).
        for path in ("/healthz", "/readyz", "/metrics"):
            for _ in range(10):
                answer = httpx.get(f"{limited.url(limited.ports[0])}{path}", timeout=10)
                assert answer.status_code == 200, path
        time.sleep(int(limited_answer.headers["Retry-After"]) + 0.1)
        assert http.get("/v1/accounts").status_code == 200


def test_rate_limit_is_shared_by_every_api_process(limited: LimitedApi, api: Api) -> None:
    with _client(limited, api, 0) as first, _client(limited, api, 1) as second:
        time.sleep(1.1)
        statuses = [(first if n % 2 else second).get("/v1/accounts").status_code for n in range(10)]
    # Five in the bucket, whichever process answers: not five each.
    assert statuses.count(200) <= 6, statuses
    assert statuses.count(429) >= 4, statuses


def test_redis_down_fails_open_for_reads_and_503_for_writes(limited: LimitedApi, api: Api) -> None:
    wallet = api.create_wallet()
    limited.redis.kill()
    with _client(limited, api) as http:
        read = http.get(f"/v1/wallets/{wallet}")
        assert read.status_code == 200
        assert "RateLimit-Limit" not in read.headers
        write = http.post(
            f"/v1/wallets/{wallet}/replenishments",
            json={"amount": "1.00"},
            headers={"Idempotency-Key": new_key()},
        )
        assert_problem(write, 503, "service_unavailable")
        ready = httpx.get(f"{limited.url(limited.ports[0])}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "unavailable"}
    assert api.balance(wallet) == 0
