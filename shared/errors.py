"""The error tree. Every refusal that reaches a client is a `PaysysError`; the API renders
each as RFC 9457 problem+json in one place (`api.errors`), with its machine-readable
`code` and HTTP `status`.

    PaysysError
    ├── Unauthorized              401 unauthorized
    ├── NotFound                  404 not_found
    ├── ValidationFailed          422 validation_error (with a list of field errors)
    ├── UnsupportedCurrency       422 unsupported_currency
    ├── SameWallet                422 same_wallet
    ├── NotReversible             422 not_reversible
    ├── WebhookUrlNotAllowed      422 webhook_url_not_allowed
    ├── IdempotencyKeyRequired    400 idempotency_key_required
    ├── IdempotencyKeyReused      422 idempotency_key_reused
    ├── IdempotencyKeyInUse       409 idempotency_key_in_use
    ├── PayloadTooLarge           413 payload_too_large
    ├── RateLimited               429 rate_limited
    ├── ServiceUnavailable        503 service_unavailable
    └── Overloaded                503 overloaded (the backlog is over its bound)

Operation failures (`insufficient_funds`) are not exceptions: they are the recorded
outcome of an operation, see `shared.ledger`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PaysysError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}

    def extra(self) -> dict[str, Any]:
        """Members added to the problem document besides type/title/status/detail/code."""
        return {}


class Unauthorized(PaysysError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "A valid API key is required: Authorization: Bearer <key>"):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="paysys"'})


class NotFound(PaysysError):
    status, code, title = 404, "not_found", "Not found"


class FieldError:
    __slots__ = ("loc", "msg")

    def __init__(self, loc: list[str | int], msg: str):
        self.loc = loc
        self.msg = msg

    def as_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "msg": self.msg}


class ValidationFailed(PaysysError):
    status, code, title = 422, "validation_error", "Validation failed"

    def __init__(self, errors: list[FieldError], detail: str | None = None):
        super().__init__(detail or "The request is not valid; see errors")
        self.errors = errors

    def extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


class NotReversible(PaysysError):
    status, code, title = 422, "not_reversible", "Not reversible"


class WebhookUrlNotAllowed(PaysysError):
    """A webhook URL that is not http(s), or whose host is or resolves to an address that
    is not public while those are not allowed (`shared.webhooks.urls`)."""

    status, code, title = 422, "webhook_url_not_allowed", "Webhook URL not allowed"


class UnsupportedCurrency(PaysysError):
    """With `errors` when several fields may be at fault (the items of a batch)."""

    status, code, title = 422, "unsupported_currency", "Unsupported currency"

    def __init__(self, detail: str | None = None, errors: list[FieldError] | None = None):
        super().__init__(detail)
        self.errors = errors or []

    def extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]} if self.errors else {}


class SameWallet(PaysysError):
    status, code, title = 422, "same_wallet", "Transfer to the same wallet"


class IdempotencyKeyRequired(PaysysError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key required"


class IdempotencyKeyReused(PaysysError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused"


class IdempotencyKeyInUse(PaysysError):
    status, code, title = 409, "idempotency_key_in_use", "Idempotency-Key in use"


class PayloadTooLarge(PaysysError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RateLimited(PaysysError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, headers: dict[str, str]):
        super().__init__(detail, headers=headers)


class ServiceUnavailable(PaysysError):
    status, code, title = 503, "service_unavailable", "Service unavailable"

    def __init__(self, detail: str = "A dependency is unavailable; retry shortly"):
        super().__init__(detail, headers={"Retry-After": "1"})


class Overloaded(PaysysError):
    status, code, title = 503, "overloaded", "Overloaded"

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
