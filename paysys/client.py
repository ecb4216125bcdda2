"""A Python client for the paysys HTTP API.

    from paysys.client import Paysys

    with Paysys("http://127.0.0.1:8000", api_key) as paysys:
        alice = paysys.create_account("Alice")
        paysys.replenish(alice.wallet.id, "25.00").wait()
        bob = paysys.create_account("Bob")
        transfer = paysys.transfer(alice.wallet.id, bob.wallet.id, "5.00").wait()
        print(transfer.status, paysys.get_wallet(alice.wallet.id).balance)

Money-moving calls get an Idempotency-Key of their own unless one is given, and are
retried with that same key on network errors, 503 (a dependency down, or `overloaded`),
409 (the same key still in flight) and 429, so a retry never moves money twice. A retry
waits at least the server's Retry-After; all the retries of one call wait at most
`max_retry_wait` seconds in total, after which the last answer is raised. An operation or
batch whose request was a replay of an earlier one with the same key (the server said
`Idempotent-Replayed: true`) has `replayed` set. Amounts are `Decimal`s (or strings, or
ints); floats are refused.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx

__all__ = [
    "Account",
    "ApiError",
    "Batch",
    "BatchItem",
    "Operation",
    "Page",
    "Paysys",
    "Posting",
    "Wallet",
]

RETRY_STATUSES = {409, 429, 503}
T = TypeVar("T")


class ApiError(Exception):
    """A problem+json answer: `status`, `code`, `detail` and, for validation, `errors`."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.code: str = body.get("code", "unknown")
        self.detail: str = body.get("detail", "")
        self.errors: list[dict[str, Any]] = body.get("errors") or []
        super().__init__(f"{status} {self.code}: {self.detail}")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _maybe_time(value: str | None) -> datetime | None:
    return None if value is None else _time(value)


def _amount(value: Decimal | str | int) -> str:
    if isinstance(value, float | bool):
        raise TypeError("amounts are Decimal, str or int, never float")
    return str(value)


@dataclass(frozen=True)
class Wallet:
    id: str
    account_id: str
    currency: str
    balance: Decimal
    updated_at: datetime

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Wallet:
        return cls(
            data["id"],
            data["account_id"],
            data["currency"],
            Decimal(data["balance"]),
            _time(data["updated_at"]),
        )


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    created_at: datetime
    wallet: Wallet

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Account:
        return cls(
            data["id"],
            data["name"],
            _time(data["created_at"]),
            Wallet.parse(data["wallet"]),
        )


@dataclass(frozen=True)
class Posting:
    id: str
    transaction_id: str
    operation_id: str
    type: str
    amount: Decimal
    balance_after: Decimal
    created_at: datetime

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Posting:
        return cls(
            data["id"],
            data["transaction_id"],
            data["operation_id"],
            data["type"],
            Decimal(data["amount"]),
            Decimal(data["balance_after"]),
            _time(data["created_at"]),
        )


@dataclass(frozen=True)
class Operation:
    id: str
    type: str
    status: str
    amount: Decimal
    currency: str
    wallet_id: str | None
    from_wallet_id: str | None
    to_wallet_id: str | None
    reference: str | None
    batch_id: str | None
    transaction_id: str | None
    error: dict[str, str] | None
    created_at: datetime
    completed_at: datetime | None
    client: Paysys | None = field(default=None, repr=False, compare=False)
    # This answer was a replay: the operation was created by an earlier request.
    replayed: bool = field(default=False, compare=False)

    @property
    def final(self) -> bool:
        return self.status != "pending"

    def wait(self, timeout: float = 60) -> Operation:
        """The operation once it is final (long polls; raises TimeoutError)."""
        assert self.client is not None
        return self.client.wait_operation(self.id, timeout=timeout)

    @classmethod
    def parse(
        cls, data: dict[str, Any], client: Paysys | None = None, *, replayed: bool = False
    ) -> Operation:
        return cls(
            data["id"],
            data["type"],
            data["status"],
            Decimal(data["amount"]),
            data["currency"],
            data["wallet_id"],
            data["from_wallet_id"],
            data["to_wallet_id"],
            data["reference"],
            data["batch_id"],
            data["transaction_id"],
            data["error"],
            _time(data["created_at"]),
            _maybe_time(data["completed_at"]),
            client,
            replayed,
        )


@dataclass(frozen=True)
class Batch:
    id: str
    status: str
    total: int
    pending: int
    succeeded: int
    failed: int
    created_at: datetime
    completed_at: datetime | None
    client: Paysys | None = field(default=None, repr=False, compare=False)
    # This answer was a replay: the batch was accepted by an earlier request.
    replayed: bool = field(default=False, compare=False)

    def wait(self, timeout: float = 600) -> Batch:
        """The batch once no item is pending (long polls; raises TimeoutError)."""
        assert self.client is not None
        return self.client.wait_batch(self.id, timeout=timeout)

    @classmethod
    def parse(
        cls, data: dict[str, Any], client: Paysys | None = None, *, replayed: bool = False
    ) -> Batch:
        return cls(
            data["id"],
            data["status"],
            data["total"],
            data["pending"],
            data["succeeded"],
            data["failed"],
            _time(data["created_at"]),
            _maybe_time(data["completed_at"]),
            client,
            replayed,
        )


@dataclass(frozen=True)
class BatchItem:
    wallet_id: str
    amount: Decimal | str | int
    reference: str | None = None

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"wallet_id": self.wallet_id, "amount": _amount(self.amount)}
        if self.reference is not None:
            item["reference"] = self.reference
        return item


class Page(list[T]):
    """A page of results; `next_cursor` fetches the next one (None on the last)."""

    def __init__(self, items: list[T], next_cursor: str | None = None):
        super().__init__(items)
        self.next_cursor = next_cursor


class Paysys:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 40.0,
        retries: int = 6,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url.rstrip("/")
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "paysys-python"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Paysys:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> tuple[int, Any]:
        response = self._send(
            method, path, json=json, params=params, idempotency_key=idempotency_key, retry=retry
        )
        return response.status_code, response.json()

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> httpx.Response:
        """The answer to a request, retried as the module says; ApiError for a 4xx/5xx."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError:
                delay = self._delay(attempt, None)
                if not retry or attempt > self.retries or waited + delay > self.max_retry_wait:
                    raise
                time.sleep(delay)
                waited += delay
                continue
            if response.status_code in RETRY_STATUSES and retry and attempt <= self.retries:
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                # A Retry-After beyond what is left of the budget: give up now rather than
                # ask again early (an overloaded server would only say the same).
                if waited + delay <= self.max_retry_wait:
                    time.sleep(delay)
                    waited += delay
                    continue
            if response.status_code >= 400:
                try:
                    body = response.json()
                except ValueError:
                    body = {"detail": response.text}
                raise ApiError(response.status_code, body)
            return response

    @staticmethod
    def _delay(attempt: int, retry_after: str | None) -> float:
        delay = min(8.0, 0.1 * 2.0 ** (attempt - 1)) * (0.5 + random.random())
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        return delay

    @staticmethod
    def _replayed(response: httpx.Response) -> bool:
        return str(response.headers.get("Idempotent-Replayed", "")).lower() == "true"

    @staticmethod
    def _key(given: str | None) -> str:
        return given or f"py-{uuid.uuid4()}"

    # --- accounts and wallets ------------------------------------------------------------

    def create_account(self, name: str, *, idempotency_key: str | None = None) -> Account:
        _, body = self._request(
            "POST", "/v1/accounts", json={"name": name}, idempotency_key=self._key(idempotency_key)
        )
        return Account.parse(body)

    def get_account(self, account_id: str) -> Account:
        return Account.parse(self._request("GET", f"/v1/accounts/{account_id}")[1])

    def list_accounts(self, *, limit: int = 50, cursor: str | None = None) -> Page[Account]:
        body = self._page("/v1/accounts", limit, cursor)
        return Page([Account.parse(a) for a in body["items"]], next_cursor=body["next_cursor"])

    def iter_accounts(self) -> Iterator[Account]:
        yield from self._walk(self.list_accounts)

    def get_wallet(self, wallet_id: str) -> Wallet:
        return Wallet.parse(self._request("GET", f"/v1/wallets/{wallet_id}")[1])

    def list_postings(
        self, wallet_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Posting]:
        body = self._page(f"/v1/wallets/{wallet_id}/postings", limit, cursor)
        return Page([Posting.parse(p) for p in body["items"]], next_cursor=body["next_cursor"])

    def iter_postings(self, wallet_id: str) -> Iterator[Posting]:
        """Every posting of the wallet, newest first."""
        yield from self._walk(lambda **kw: self.list_postings(wallet_id, **kw))

    # --- operations ----------------------------------------------------------------------

    def replenish(
        self,
        wallet_id: str,
        amount: Decimal | str | int,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        payload: dict[str, Any] = {"amount": _amount(amount)}
        if reference is not None:
            payload["reference"] = reference
        response = self._send(
            "POST",
            f"/v1/wallets/{wallet_id}/replenishments",
            json=payload,
            idempotency_key=self._key(idempotency_key),
        )
        return Operation.parse(response.json(), self, replayed=self._replayed(response))

    def transfer(
        self,
        from_wallet_id: str,
        to_wallet_id: str,
        amount: Decimal | str | int,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        payload: dict[str, Any] = {
            "from_wallet_id": from_wallet_id,
            "to_wallet_id": to_wallet_id,
            "amount": _amount(amount),
        }
        if reference is not None:
            payload["reference"] = reference
        response = self._send(
            "POST", "/v1/transfers", json=payload, idempotency_key=self._key(idempotency_key)
        )
        return Operation.parse(response.json(), self, replayed=self._replayed(response))

    def get_operation(self, operation_id: str, *, wait: float | None = None) -> Operation:
        params = {"wait": wait} if wait else None
        return Operation.parse(
            self._request("GET", f"/v1/operations/{operation_id}", params=params)[1], self
        )

    def wait_operation(self, operation_id: str, *, timeout: float = 60) -> Operation:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            operation = self.get_operation(operation_id, wait=max(0.0, min(30.0, remaining)))
            if operation.final:
                return operation
            if remaining <= 0:
                raise TimeoutError(f"operation {operation_id} still pending after {timeout}s")

    # --- batches -------------------------------------------------------------------------

    def create_batch(self, items: list[BatchItem], *, idempotency_key: str | None = None) -> Batch:
        response = self._send(
            "POST",
            "/v1/replenishment-batches",
            json={"items": [i.as_json() for i in items]},
            idempotency_key=self._key(idempotency_key),
        )
        return Batch.parse(response.json(), self, replayed=self._replayed(response))

    def validate_batch(self, items: list[BatchItem]) -> None:
        """Raise ApiError (422, naming the bad items) unless the batch would be accepted."""
        self._request(
            "POST",
            "/v1/replenishment-batch-validations",
            json={"items": [i.as_json() for i in items]},
        )

    def get_batch(self, batch_id: str, *, wait: float | None = None) -> Batch:
        params = {"wait": wait} if wait else None
        return Batch.parse(
            self._request("GET", f"/v1/replenishment-batches/{batch_id}", params=params)[1], self
        )

    def wait_batch(self, batch_id: str, *, timeout: float = 600) -> Batch:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            batch = self.get_batch(batch_id, wait=max(0.0, min(30.0, remaining)))
            if batch.status == "completed":
                return batch
            if remaining <= 0:
                raise TimeoutError(f"batch {batch_id} still pending after {timeout}s")

    def list_batch_operations(
        self, batch_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Operation]:
        body = self._page(f"/v1/replenishment-batches/{batch_id}/operations", limit, cursor)
        return Page(
            [Operation.parse(o, self) for o in body["items"]], next_cursor=body["next_cursor"]
        )

    # --- paging --------------------------------------------------------------------------

    def _page(self, path: str, limit: int, cursor: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return dict(self._request("GET", path, params=params)[1])

    @staticmethod
    def _walk(fetch: Any) -> Iterator[Any]:
        cursor = None
        while True:
            page = fetch(limit=200, cursor=cursor)
            yield from page
            cursor = page.next_cursor
            if cursor is None:
                return
