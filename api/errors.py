"""One place that turns every failure into RFC 9457 problem+json.

Refusals are `PaysysError`s. Framework errors (validation, unknown route, wrong method)
are mapped onto the same codes. A dependency that is down is a 503
`service_unavailable`; anything else unexpected is logged and answered with a bare 500
problem document, never a stack trace.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.responses import error_response, problem
from shared.errors import (
    FieldError,
    IdempotencyKeyRequired,
    PaysysError,
    ServiceUnavailable,
    ValidationFailed,
)

log = logging.getLogger("paysys.api")

# What a database or Redis outage looks like from the API.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # Releasing a connection the server terminated mid-query (a fast shutdown) fails to
    # reset it; the pool discards it.
    asyncpg.InternalClientError,
    # Out of connections, memory (the lock table) or disk.
    asyncpg.InsufficientResourcesError,
    # Shutting down, starting up, or statement_timeout: the database is not keeping up.
    asyncpg.OperatorInterventionError,
    # lock_timeout outside an idempotency wait: rows held too long by other writers.
    asyncpg.LockNotAvailableError,
    # A failover's read-only moment; contention a retry resolves.
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    # Unreachable, timing out or loading (ConnectionError, TimeoutError, BusyLoadingError),
    # and the refusals of a Redis that is up but cannot serve: READONLY (a replica after a
    # failover), OOM (maxmemory reached), MASTERDOWN, a script error (all ResponseError).
    # Redis only carries wake-ups and rate limits; none of this is the request's fault.
    redis.exceptions.RedisError,
)


def _printable(part: Any) -> str | int:
    """A location as it can be echoed back: a hostile field name may not be valid UTF-8."""
    if isinstance(part, int):
        return part
    return str(part).encode("utf-8", "replace").decode("utf-8")[:200]


def field_errors(raw: list[Any]) -> list[FieldError]:
    errors = []
    for err in raw:
        loc = [_printable(part) for part in err.get("loc", ()) if part != "__root__"]
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error")
            msg = (
                f"The body is not valid JSON: {reason}" if reason else "The body is not valid JSON"
            )
        errors.append(FieldError(loc, msg))
    return errors


async def _paysys_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PaysysError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for e in errors:
        if tuple(e.get("loc", ())) != KEY_HEADER:
            continue
        if e.get("type") == "missing":
            return error_response(
                IdempotencyKeyRequired(
                    "Money-moving requests need an Idempotency-Key header (1-255 printable ASCII)"
                )
            )
        # An empty header is a key the client meant to send and did not (an unset
        # variable in `-H "Idempotency-Key: $KEY"`); where the key is optional (account
        # creation), taking it as absent would make the client's retries create twice.
        if e.get("input") == "":
            return error_response(
                IdempotencyKeyRequired(
                    "The Idempotency-Key header is empty; it must be 1-255 printable ASCII"
                )
            )
    return error_response(ValidationFailed(field_errors(errors)))


KEY_HEADER = ("header", "Idempotency-Key")


_HTTP_CODES = {
    404: ("not_found", "Not found", "No such route"),
    405: ("method_not_allowed", "Method not allowed", "This method is not allowed on this route"),
    413: ("payload_too_large", "Payload too large", "The request body is too large"),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title, detail = _HTTP_CODES.get(
        exc.status_code, ("http_error", "HTTP error", str(exc.detail))
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the methods of the first route that matched the path; a
        # path served by several routes (GET and POST /v1/accounts) allows them all.
        allowed = _allowed_methods(request)
        if allowed:  # (routes outside the schema, /docs say, keep Starlette's answer)
            headers["Allow"] = ", ".join(allowed)
    return problem(exc.status_code, code, title, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    app: Any = request.app
    patterns = getattr(app.state, "allowed_methods", None)
    if patterns is None:
        patterns = [
            (
                re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"),
                {method.upper() for method in item},
            )
            for path, item in app.openapi()["paths"].items()
        ]
        app.state.allowed_methods = patterns
    allowed: set[str] = set()
    for pattern, methods in patterns:
        if pattern.match(request.url.path):
            allowed |= methods
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
    return error_response(ServiceUnavailable())


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal_error", "Internal error", "The request could not be completed")


def install(app: FastAPI) -> None:
    app.add_exception_handler(PaysysError, _paysys_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in UNAVAILABLE_ERRORS:
        app.add_exception_handler(exc_type, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
