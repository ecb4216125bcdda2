"""A Redis that is up but refuses to serve (a read-only replica after a failover, or out
of memory) is a dependency that is down: 503 service_unavailable, never a 500 (API.md,
"Conventions"). The API here has a Redis of its own and a rate limit, so every request
runs a Redis script that writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from devtools.processes import free_port, wait_ready
from tests.conftest import Stack
from tests.helpers import Api, assert_problem, new_key
from tests.private_servers import PrivateRedis
from tests.stack import Service


class RedisBackedApi:
    def __init__(self, stack: Stack, log_dir: Path):
        self.redis = PrivateRedis()
        self.redis.start()
        self.port = free_port()
        env = {**stack.env, "REDIS_URL": self.redis.url, "PAYSYS_RATE_LIMIT": "1000/second"}
        self.service = Service(
            "redis-refusals-api", ["api", "--port", str(self.port)], env, log_dir
        )
        self.service.start()
        self.url = f"http://127.0.0.1:{self.port}"
        wait_ready(self.url)
        self.admin = redis.Redis.from_url(self.redis.url)

    def stop(self) -> None:
        self.admin.close()
        self.service.stop()
        self.redis.destroy()


@pytest.fixture
def own_redis(stack: Stack, tmp_path: Path) -> Iterator[RedisBackedApi]:
    api = RedisBackedApi(stack, tmp_path)
    yield api
    api.stop()


def make_read_only(admin: redis.Redis) -> Callable[[], object]:
    # A replica of a primary that is not there: it keeps answering reads, refuses writes.
    admin.replicaof("127.0.0.1", str(free_port()))
    return lambda: admin.replicaof("NO", "ONE")


def make_out_of_memory(admin: redis.Redis) -> Callable[[], object]:
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")
    return lambda: admin.config_set("maxmemory", "0")


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        (make_read_only, redis.exceptions.ReadOnlyError),
        (make_out_of_memory, redis.exceptions.OutOfMemoryError),
    ],
    ids=["read-only-replica", "out-of-memory"],
)
def test_a_redis_that_refuses_writes_is_a_503(
    own_redis: RedisBackedApi,
    api: Api,
    refusal: Callable[[redis.Redis], Callable[[], object]],
    error: type[redis.RedisError],
) -> None:
    wallet = api.funded_wallet("10.00")
    other = api.create_wallet()
    with httpx.Client(
        base_url=own_redis.url, headers={"Authorization": f"Bearer {api.api_key}"}, timeout=10
    ) as http:
        assert http.get(f"/v1/wallets/{wallet}").status_code == 200
        restore = refusal(own_redis.admin)
        try:
            with pytest.raises(error):  # the refusal is real
                own_redis.admin.set("paysys-test-probe", "1")
            writes = [
                ("/v1/accounts", {"name": "Refused"}),
                (f"/v1/wallets/{wallet}/replenishments", {"amount": "1.00"}),
                ("/v1/transfers", {"from_wallet_id": wallet, "to_wallet_id": other, "amount": "1"}),
                ("/v1/replenishment-batches", {"items": [{"wallet_id": other, "amount": "1"}]}),
                (
                    "/v1/replenishment-batch-validations",
                    {"items": [{"wallet_id": other, "amount": "1"}]},
                ),
            ]
            for path, body in writes:
                response = http.post(path, json=body, headers={"Idempotency-Key": new_key()})
                assert_problem(response, 503, "service_unavailable")
                assert response.headers["Retry-After"] == "1"
            # Reads are not metered when the limiter cannot be: they go on.
            assert http.get(f"/v1/wallets/{wallet}").status_code == 200
            assert http.get("/v1/accounts").status_code == 200
        finally:
            restore()
        # Redis serving again: so is the API, with nothing of the refused requests left.
        response = http.post(
            f"/v1/wallets/{wallet}/replenishments",
            json={"amount": "1.00"},
            headers={"Idempotency-Key": new_key()},
        )
        assert response.status_code == 202, response.text
    assert api.wait(response.json()["id"])["status"] == "succeeded"
    assert api.balance(wallet) == Decimal("11.00")
    assert api.balance(other) == Decimal("0.00")
    assert [a["name"] for a in api.pages("/v1/accounts")].count("Refused") == 0
    log = own_redis.service.log()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
