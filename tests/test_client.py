"""The Python client (paysys.client), against the real service."""

from __future__ import annotations

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
