"""The client's HTTP: every request retried the same way, every error one exception.

503 (a dependency down, or `overloaded`), 409 (the same Idempotency-Key still in flight)
and 429 are retried: the server says it did nothing. A network error is retried only when
doing the request twice changes nothing: a request with an Idempotency-Key (retried with
the same key, so a retry never moves money twice), a read (GET, HEAD), a call that is
idempotent by nature (`idempotent=True`), or any request that was never sent (no
connection could be made). Otherwise the answer may have been lost after the server
acted on it (a read timeout after the commit of a new webhook endpoint), and a retry
would act again: the error is raised. A retry waits at least the server's Retry-After;
all the retries of one call wait at most `max_retry_wait` seconds in total, after which
the last answer is raised. Any other 4xx or 5xx is an `ApiError` at once.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

RETRY_STATUSES = {409, 429, 503}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Errors raised before any byte of the request was sent: retrying them is always safe.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ApiError(Exception):
    """A problem+json answer: `status`, `code`, `detail` and, for validation, `errors`."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.code: str = body.get("code", "unknown")
        self.detail: str = body.get("detail", "")
        self.errors: list[dict[str, Any]] = body.get("errors") or []
        super().__init__(f"{status} {self.code}: {self.detail}")


def new_key(given: str | None) -> str:
    """The Idempotency-Key of a money-moving call: the caller's, or one of its own."""
    return given or f"py-{uuid.uuid4()}"


def replayed(response: httpx.Response) -> bool:
    """Whether the server answered with what an earlier request of the same key got."""
    return str(response.headers.get("Idempotent-Replayed", "")).lower() == "true"


class RetryingHttp:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float,
        retries: int,
        max_retry_wait: float,
        transport: httpx.BaseTransport | None,
    ):
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "paysys-python"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """The decoded body of the answer to a request that moves no money."""
        return self.send(method, path, json=json, params=params, idempotent=idempotent).json()

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """The answer to a request, retried as the module says; ApiError for a 4xx/5xx.
        `idempotent`: doing it twice is as doing it once (retried after a network error
        even if it may have reached the server)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        repeatable = bool(idempotency_key) or idempotent or method.upper() in SAFE_METHODS
        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                delay = _delay(attempt, None)
                if not (repeatable or isinstance(exc, NOT_SENT)):
                    raise  # it may have been done: doing it again could do it twice
                if attempt > self.retries or waited + delay > self.max_retry_wait:
                    raise
                time.sleep(delay)
                waited += delay
                continue
            if response.status_code in RETRY_STATUSES and attempt <= self.retries:
                delay = _delay(attempt, response.headers.get("Retry-After"))
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


def _delay(attempt: int, retry_after: str | None) -> float:
    delay = min(8.0, 0.1 * 2.0 ** (attempt - 1)) * (0.5 + random.random())
    if retry_after and retry_after.isdigit():
        delay = max(delay, float(retry_after))
    return delay
