"""The Python client (paysys.client), against the real service."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from paysys.client import ApiError, BatchItem, Paysys
from tests.helpers import Api


@pytest.fixture
def client(api: Api) -> Any:
    with Paysys(api.base_url, api.api_key) as paysys:
        yield paysys


def test_accounts_top_ups_transfers_and_wait(client: Paysys) -> None:
    alice = client.create_account("Alice")
    bob = client.create_account("Bob")
    assert alice.wallet.balance == Decimal("0.00")
    top_up = client.replenish(alice.wallet.id, "25.00", reference="first")
    assert top_up.status in {"pending", "succeeded"}
    done = top_up.wait(timeout=30)
    assert done.status == "succeeded" and done.transaction_id is not None
    moved = client.transfer(alice.wallet.id, bob.wallet.id, Decimal("5.50")).wait()
    assert moved.status == "succeeded"
    assert client.get_wallet(alice.wallet.id).balance == Decimal("19.50")
    refused = client.transfer(alice.wallet.id, bob.wallet.id, "100.00").wait()
    assert refused.status == "failed"
    assert refused.error is not None and refused.error["code"] == "insufficient_funds"
    statement = list(client.iter_postings(alice.wallet.id))
    assert [p.amount for p in statement] == [Decimal("-5.50"), Decimal("25.00")]
    assert statement[0].balance_after == Decimal("19.50")
    assert {a.id for a in client.iter_accounts()} == {alice.id, bob.id}


def test_floats_are_refused(client: Paysys) -> None:
    wallet = client.create_account("F").wallet.id
    with pytest.raises(TypeError):
        client.replenish(wallet, 1.5)  # type: ignore[arg-type]


def test_errors_are_api_errors_with_their_code(client: Paysys) -> None:
    with pytest.raises(ApiError) as info:
        client.get_wallet("01a21281-e4e0-78de-ae4e-9f66091ef99e")
    assert info.value.status == 404 and info.value.code == "not_found"
    wallet = client.create_account("E").wallet.id
    with pytest.raises(ApiError) as info:
        client.transfer(wallet, wallet, "1.00")
    assert info.value.code == "same_wallet"


def test_batches_validate_create_and_wait(client: Paysys) -> None:
    wallets = [client.create_account(f"B{i}").wallet.id for i in range(3)]
    items = [BatchItem(w, "1.25", reference=f"r{n}") for n, w in enumerate(wallets * 4)]
    client.validate_batch(items)
    with pytest.raises(ApiError) as info:
        client.validate_batch([*items, BatchItem("01a21281-e4e0-78de-ae4e-9f66091ef99e", "1")])
    assert info.value.status == 422
    assert info.value.errors[0]["loc"] == ["body", "items", 12, "wallet_id"]
    batch = client.create_batch(items).wait(timeout=60)
    assert (batch.status, batch.succeeded, batch.failed) == ("completed", 12, 0)
    page = client.list_batch_operations(batch.id, limit=5)
    assert len(page) == 5 and page.next_cursor is not None
    assert [client.get_wallet(w).balance for w in wallets] == [Decimal("5.00")] * 3


class LoseFirstResponse(httpx.HTTPTransport):
    """Delivers every request to the real server, but loses the answer to the first
    request to `path_part`: the client sees a network error after the server recorded it."""

    def __init__(self, path_part: str) -> None:
        super().__init__()
        self.path_part = path_part
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self.path_part in request.url.path and self.lost == 0:
            response.read()
            self.lost += 1
            raise httpx.ReadError("connection reset", request=request)
        return response


@pytest.mark.parametrize("lost", ["/replenishments", "/v1/accounts"])
def test_a_lost_response_is_retried_without_doing_it_twice(api: Api, lost: str) -> None:
    transport = LoseFirstResponse(lost)
    with Paysys(api.base_url, api.api_key, transport=transport) as client:
        wallet = client.create_account("Retry").wallet.id
        operation = client.replenish(wallet, "7.00").wait()
    assert transport.lost == 1  # one answer was lost, and the client retried
    assert operation.status == "succeeded"
    assert [a["name"] for a in api.get("/v1/accounts").json()["items"]] == ["Retry"]
    assert api.balance(wallet) == Decimal("7.00")
    assert len(api.postings(wallet)) == 1


def test_a_replay_is_flagged_and_moves_nothing(client: Paysys) -> None:
    wallet = client.create_account("Replay").wallet.id
    items = [BatchItem(wallet, "1.50"), BatchItem(wallet, "2.50")]
    first = client.create_batch(items, idempotency_key="batch-replay-1")
    again = client.create_batch(items, idempotency_key="batch-replay-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.id == first.id
    top_up = client.replenish(wallet, "1.00", idempotency_key="top-up-replay-1")
    repeat = client.replenish(wallet, "1.00", idempotency_key="top-up-replay-1")
    assert (top_up.replayed, repeat.replayed, repeat.id) == (False, True, top_up.id)
    first.wait(timeout=60)
    top_up.wait()
    assert client.get_wallet(wallet).balance == Decimal("5.00")


class OverloadedFirst(httpx.HTTPTransport):
    """The real server behind it, except that the first `times` requests to `path_part`
    are answered as a server over its backlog bound answers: 503 overloaded, with
    Retry-After (never reaching the server, as an overloaded server accepts nothing)."""

    def __init__(self, path_part: str, times: int, retry_after: int) -> None:
        super().__init__()
        self.path_part = path_part
        self.times = times
        self.retry_after = retry_after
        self.refused: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.path_part in request.url.path and len(self.refused) < self.times:
            self.refused.append(time.monotonic())
            return httpx.Response(
                503,
                headers={
                    "Retry-After": str(self.retry_after),
                    "Content-Type": "application/problem+json",
                },
                json={
                    "type": "https://paysys.dev/problems/overloaded",
                    "title": "Overloaded",
                    "status": 503,
                    "detail": "The backlog of accepted work is over its bound; retry later",
                    "code": "overloaded",
                },
                request=request,
            )
        return super().handle_request(request)


def test_overloaded_is_retried_after_its_retry_after(api: Api) -> None:
    transport = OverloadedFirst("/replenishment-batches", times=2, retry_after=1)
    with Paysys(api.base_url, api.api_key, transport=transport) as client:
        wallet = client.create_account("Overloaded").wallet.id
        started = time.monotonic()
        batch = client.create_batch([BatchItem(wallet, "3.00")])
        accepted_at = time.monotonic()
        assert batch.wait(timeout=60).succeeded == 1
    assert len(transport.refused) == 2
    # Each retry waited at least the Retry-After (1 s), not the short first backoffs.
    assert transport.refused[1] - transport.refused[0] >= 1.0
    assert accepted_at - started >= 2.0
    assert not batch.replayed
    assert api.balance(wallet) == Decimal("3.00")


@pytest.mark.parametrize(
    ("retry_after", "budget", "most"), [(1, 2.5, 4.0), (3600, 60.0, 1.0)], ids=["1s", "1h"]
)
def test_retrying_overloaded_stops_at_the_wait_budget(
    api: Api, retry_after: int, budget: float, most: float
) -> None:
    transport = OverloadedFirst("/replenishments", times=100, retry_after=retry_after)
    with Paysys(api.base_url, api.api_key, transport=transport, max_retry_wait=budget) as client:
        wallet = client.create_account("Budget").wallet.id
        started = time.monotonic()
        with pytest.raises(ApiError) as info:
            client.replenish(wallet, "1.00")
        elapsed = time.monotonic() - started
    assert (info.value.status, info.value.code) == (503, "overloaded")
    assert elapsed < most  # never sleeps past the budget (nor an hour's Retry-After)
    assert len(transport.refused) == (3 if retry_after == 1 else 1)
    assert api.balance(wallet) == Decimal("0.00")
