"""`Paysys`: one method per API call, answers parsed into `paysys.client.models`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from paysys.client.events import EventsAndWebhooks
from paysys.client.http import RetryingHttp, new_key, replayed
from paysys.client.models import (
    Account,
    Batch,
    BatchItem,
    Hold,
    Operation,
    Page,
    Posting,
    Wallet,
    amount_text,
)

T = TypeVar("T")
# A long poll's longest wait on the server; a longer wait asks again.
LONG_POLL_SECONDS = 30.0


class Paysys(EventsAndWebhooks):
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
        self._http = RetryingHttp(
            self.url,
            api_key,
            timeout=timeout,
            retries=retries,
            max_retry_wait=max_retry_wait,
            transport=transport,
        )

    @property
    def retries(self) -> int:
        return self._http.retries

    @property
    def max_retry_wait(self) -> float:
        return self._http.max_retry_wait

    def __enter__(self) -> Paysys:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- accounts and wallets ------------------------------------------------------------

    def create_account(self, name: str, *, idempotency_key: str | None = None) -> Account:
        response = self._http.send(
            "POST", "/v1/accounts", json={"name": name}, idempotency_key=new_key(idempotency_key)
        )
        return Account.parse(response.json())

    def get_account(self, account_id: str) -> Account:
        return Account.parse(self._http.json("GET", f"/v1/accounts/{account_id}"))

    def list_accounts(self, *, limit: int = 50, cursor: str | None = None) -> Page[Account]:
        return self._page("/v1/accounts", limit, cursor, Account.parse)

    def iter_accounts(self) -> Iterator[Account]:
        yield from _walk(self.list_accounts)

    def get_wallet(self, wallet_id: str) -> Wallet:
        return Wallet.parse(self._http.json("GET", f"/v1/wallets/{wallet_id}"))

    def list_postings(
        self, wallet_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Posting]:
        return self._page(f"/v1/wallets/{wallet_id}/postings", limit, cursor, Posting.parse)

    def iter_postings(self, wallet_id: str) -> Iterator[Posting]:
        """Every posting of the wallet, newest first."""
        yield from _walk(lambda **kw: self.list_postings(wallet_id, **kw))

    # --- operations ----------------------------------------------------------------------

    def replenish(
        self,
        wallet_id: str,
        amount: Decimal | str | int,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        payload: dict[str, Any] = {"amount": amount_text(amount)}
        return self._operation(
            f"/v1/wallets/{wallet_id}/replenishments", payload, reference, idempotency_key
        )

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
            "amount": amount_text(amount),
        }
        return self._operation("/v1/transfers", payload, reference, idempotency_key)

    def withdraw(
        self,
        wallet_id: str,
        amount: Decimal | str | int,
        *,
        currency: str = "USD",
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        """Money out of the wallet (a payout); fails `insufficient_funds` unless its
        available balance covers it."""
        payload: dict[str, Any] = {"amount": amount_text(amount), "currency": currency}
        return self._operation(
            f"/v1/wallets/{wallet_id}/withdrawals", payload, reference, idempotency_key
        )

    # --- holds and reversals -------------------------------------------------------------

    def hold(
        self,
        from_wallet_id: str,
        amount: Decimal | str | int,
        *,
        to_wallet_id: str | None = None,
        expires_in: int | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        """Reserve `amount` on the wallet, for `expires_in` seconds (the server's default
        is a week). The operation's id is the hold's: `capture`, `void` and `get_hold`
        take it. Without `to_wallet_id`, a capture takes the money out of paysys."""
        payload: dict[str, Any] = {"from_wallet_id": from_wallet_id, "amount": amount_text(amount)}
        if to_wallet_id is not None:
            payload["to_wallet_id"] = to_wallet_id
        if expires_in is not None:
            # The API takes whole seconds only, and a JSON true would be no number of them.
            if isinstance(expires_in, bool) or not isinstance(expires_in, int):
                raise TypeError("expires_in is a whole number of seconds")
            payload["expires_in"] = expires_in
        return self._operation("/v1/holds", payload, reference, idempotency_key)

    def capture(
        self,
        hold_id: str,
        amount: Decimal | str | int | None = None,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        """Move the held money (all of it, or `amount` of it) to the hold's destination,
        and release the whole hold."""
        payload: dict[str, Any] = {} if amount is None else {"amount": amount_text(amount)}
        return self._operation(f"/v1/holds/{hold_id}/capture", payload, reference, idempotency_key)

    def void(self, hold_id: str, *, idempotency_key: str | None = None) -> Operation:
        """Release the hold without moving any money."""
        return self._operation(f"/v1/holds/{hold_id}/void", {}, None, idempotency_key)

    def get_hold(self, hold_id: str) -> Hold:
        return Hold.parse(self._http.json("GET", f"/v1/holds/{hold_id}"))

    def reverse(
        self,
        operation_id: str,
        amount: Decimal | str | int | None = None,
        *,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Operation:
        """Give back a succeeded transfer, replenishment, withdrawal or capture: all that
        is left of it, or `amount` (several partial reversals are allowed)."""
        payload: dict[str, Any] = {} if amount is None else {"amount": amount_text(amount)}
        return self._operation(
            f"/v1/operations/{operation_id}/reversals", payload, reference, idempotency_key
        )

    def _operation(
        self,
        path: str,
        payload: dict[str, Any],
        reference: str | None,
        idempotency_key: str | None,
    ) -> Operation:
        if reference is not None:
            payload["reference"] = reference
        response = self._http.send(
            "POST", path, json=payload, idempotency_key=new_key(idempotency_key)
        )
        return Operation.parse(response.json(), self, replayed=replayed(response))

    def get_operation(self, operation_id: str, *, wait: float | None = None) -> Operation:
        params = {"wait": wait} if wait else None
        body = self._http.json("GET", f"/v1/operations/{operation_id}", params=params)
        return Operation.parse(body, self)

    def wait_operation(self, operation_id: str, *, timeout: float = 60) -> Operation:
        return _poll(
            lambda wait: self.get_operation(operation_id, wait=wait),
            lambda operation: operation.final,
            timeout,
            f"operation {operation_id}",
        )

    # --- batches -------------------------------------------------------------------------

    def create_batch(self, items: list[BatchItem], *, idempotency_key: str | None = None) -> Batch:
        response = self._http.send(
            "POST",
            "/v1/replenishment-batches",
            json={"items": [i.as_json() for i in items]},
            idempotency_key=new_key(idempotency_key),
        )
        return Batch.parse(response.json(), self, replayed=replayed(response))

    def validate_batch(self, items: list[BatchItem]) -> None:
        """Raise ApiError (422, naming the bad items) unless the batch would be accepted."""
        self._http.json(
            "POST",
            "/v1/replenishment-batch-validations",
            json={"items": [i.as_json() for i in items]},
        )

    def get_batch(self, batch_id: str, *, wait: float | None = None) -> Batch:
        params = {"wait": wait} if wait else None
        body = self._http.json("GET", f"/v1/replenishment-batches/{batch_id}", params=params)
        return Batch.parse(body, self)

    def wait_batch(self, batch_id: str, *, timeout: float = 600) -> Batch:
        return _poll(
            lambda wait: self.get_batch(batch_id, wait=wait),
            lambda batch: batch.status == "completed",
            timeout,
            f"batch {batch_id}",
        )

    def list_batch_operations(
        self, batch_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Operation]:
        return self._page(
            f"/v1/replenishment-batches/{batch_id}/operations",
            limit,
            cursor,
            lambda item: Operation.parse(item, self),
        )

    # --- paging --------------------------------------------------------------------------

    def _page(
        self, path: str, limit: int, cursor: str | None, parse: Callable[[dict[str, Any]], T]
    ) -> Page[T]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = self._http.json("GET", path, params=params)
        return Page([parse(item) for item in body["items"]], next_cursor=body["next_cursor"])


def _walk(fetch: Callable[..., Page[T]]) -> Iterator[T]:
    cursor = None
    while True:
        page = fetch(limit=200, cursor=cursor)
        yield from page
        cursor = page.next_cursor
        if cursor is None:
            return


def _poll(get: Callable[[float], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
    """Long polls `get` until `done`, or raises TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        answer = get(max(0.0, min(LONG_POLL_SECONDS, remaining)))
        if done(answer):
            return answer
        if remaining <= 0:
            raise TimeoutError(f"{what} still pending after {timeout}s")
