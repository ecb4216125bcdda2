"""The client's HTTP: every request retried the same way, every error one exception.

Network errors, 503 (a dependency down, or `overloaded`), 409 (the same Idempotency-Key
still in flight) and 429 are retried, with the request's same Idempotency-Key, so a retry
never moves money twice. A retry waits at least the server's Retry-After; all the retries
of one call wait at most `max_retry_wait` seconds in total, after which the last answer
is raised. Any other 4xx or 5xx is an `ApiError` at once.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

RETRY_STATUSES = {409, 429, 503}


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
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The decoded body of the answer to a request that moves no money."""
        return self.send(method, path, json=json, params=params).json()

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
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
                delay = _delay(attempt, None)
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
