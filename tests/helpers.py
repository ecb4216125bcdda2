"""Small factories and a thin client for tests, speaking only the public HTTP API."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
import psycopg2

from shared.ledger.repository import CLAIM_LOCK_SEED

FINAL = {"succeeded", "failed"}


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


class Api:
    """One tenant's view of paysys."""

    def __init__(self, base_url: str, api_key: str):
        self.base_url = base_url
        self.api_key = api_key
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        )

    def close(self) -> None:
        self.http.close()

    # --- raw calls -------------------------------------------------------------------

    def post(self, path: str, body: Any, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.http.post(path, json=body, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    # --- factories -------------------------------------------------------------------

    def create_account(self, name: str = "Test account") -> dict[str, Any]:
        response = self.post("/v1/accounts", {"name": name})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_wallet(self, name: str = "Test account") -> str:
        return str(self.create_account(name)["wallet"]["id"])

    def replenish(
        self, wallet_id: str, amount: str, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        return self.post(
            f"/v1/wallets/{wallet_id}/replenishments",
            {"amount": amount, **extra},
            key=key or new_key(),
        )

    def transfer(
        self, source: str, destination: str, amount: str, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        return self.post(
            "/v1/transfers",
            {"from_wallet_id": source, "to_wallet_id": destination, "amount": amount, **extra},
            key=key or new_key(),
        )

    def withdraw(
        self, wallet_id: str, amount: str, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        return self.post(
            f"/v1/wallets/{wallet_id}/withdrawals",
            {"amount": amount, **extra},
            key=key or new_key(),
        )

    def place_hold(
        self,
        source: str,
        amount: str,
        destination: str | None = None,
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body = {"from_wallet_id": source, "amount": amount, **extra}
        if destination is not None:
            body["to_wallet_id"] = destination
        return self.post("/v1/holds", body, key=key or new_key())

    def capture(self, hold_id: str, key: str | None = None, **body: Any) -> httpx.Response:
        return self.post(f"/v1/holds/{hold_id}/capture", body, key=key or new_key())

    def void(self, hold_id: str, key: str | None = None) -> httpx.Response:
        return self.post(f"/v1/holds/{hold_id}/void", {}, key=key or new_key())

    def reverse(self, operation_id: str, key: str | None = None, **body: Any) -> httpx.Response:
        return self.post(f"/v1/operations/{operation_id}/reversals", body, key=key or new_key())

    def applied(self, response: httpx.Response) -> dict[str, Any]:
        """The accepted operation of a 202, once final."""
        assert response.status_code == 202, response.text
        return self.wait(response.json()["id"])

    def active_hold(
        self, source: str, amount: str, destination: str | None = None, **extra: Any
    ) -> str:
        """A hold that was applied, and so reserves its amount."""
        hold_id = self.applied(self.place_hold(source, amount, destination, **extra))["id"]
        assert self.hold(hold_id)["status"] == "held"
        return str(hold_id)

    def funded_wallet(self, amount: str, name: str = "Funded") -> str:
        wallet_id = self.create_wallet(name)
        response = self.replenish(wallet_id, amount)
        assert response.status_code == 202, response.text
        assert self.wait(response.json()["id"])["status"] == "succeeded"
        return wallet_id

    # --- reads -----------------------------------------------------------------------

    def operation(self, operation_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/operations/{operation_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, operation_id: str, timeout: float = 30) -> dict[str, Any]:
        """Long-poll an operation until it is final; fail the test if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            response = self.get(
                f"/v1/operations/{operation_id}", params={"wait": max(0, min(10, remaining))}
            )
            assert response.status_code == 200, response.text
            operation = dict(response.json())
            if operation["status"] in FINAL:
                return operation
            if remaining <= 0:
                raise AssertionError(f"operation {operation_id} still pending after {timeout}s")

    def wallet(self, wallet_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/wallets/{wallet_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def hold(self, hold_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/holds/{hold_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_hold(self, hold_id: str, statuses: set[str], timeout: float = 15) -> dict[str, Any]:
        """Poll a hold until its status is one of `statuses`: a hold's expiry has no long
        poll of its own."""
        deadline = time.monotonic() + timeout
        while True:
            hold = self.hold(hold_id)
            if hold["status"] in statuses:
                return hold
            if time.monotonic() > deadline:
                raise AssertionError(f"hold {hold_id} still {hold['status']} after {timeout}s")
            time.sleep(0.1)

    def funds(self, wallet_id: str) -> tuple[str, str, str]:
        """The wallet's balance, held and available."""
        wallet = self.wallet(wallet_id)
        return wallet["balance"], wallet["held"], wallet["available"]

    def balance(self, wallet_id: str) -> Decimal:
        return Decimal(self.wallet(wallet_id)["balance"])

    def postings(self, wallet_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """Every posting of the wallet, newest first, walking all pages."""
        return self.pages(f"/v1/wallets/{wallet_id}/postings", limit)

    def pages(self, path: str, limit: int = 200) -> list[dict[str, Any]]:
        """Every item of a listing, walking its pages with their cursors."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            response = self.get(path, params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = dict(response.json())
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def hold_wallet_queue(
    database_url: str, wallet: str, release: threading.Event, held: threading.Event
) -> None:
    """Claim a wallet's queue the way a drain does, so no worker can apply its operations."""
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s::uuid::text, %s))",
            (wallet, CLAIM_LOCK_SEED),
        )
        held.set()
        release.wait(30)
    conn.close()


@contextmanager
def wallet_queue_held(database_url: str, wallet: str) -> Iterator[None]:
    """While inside, no worker applies the wallet's operations: they stay pending."""
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_wallet_queue, args=(database_url, wallet, release, held))
    holder.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        holder.join()
