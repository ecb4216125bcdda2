"""Pure ASGI middleware (no per-request task): metrics and the access log, request ids,
body size, API keys and rate limits, in that order.

Authentication runs before routing, so an unauthenticated client learns nothing about
`/v1` (not even which routes exist) and every `/v1` route is covered without having to
remember a dependency. The rate limit applies per API key, right after authentication.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import UNAVAILABLE_ERRORS
from api.responses import error_response
from shared import apikeys, metrics
from shared.errors import (
    PayloadTooLarge,
    PaysysError,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)
from shared.ids import uuid7

log = logging.getLogger("paysys.api")
access = logging.getLogger("paysys.access")

_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _adding_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """`send`, with `headers` added to the response's start."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return send_with_headers


async def _send_error(exc: PaysysError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(exc)(scope, receive, send)


class MetricsMiddleware:
    """Counts and times every HTTP request, by method, route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            seconds = time.perf_counter() - started
            metrics.http_requests.labels(method, template, str(status)).inc()
            metrics.http_seconds.labels(method, template).observe(seconds)
            state = scope.get("state", {})
            access.info(
                "%s %s %s",
                method,
                template,
                status,
                extra={
                    "request_id": state.get("request_id"),
                    "tenant_id": state.get("tenant_id"),
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


class RequestIdMiddleware:
    """Takes the client's `X-Request-Id` (if well formed) or makes one, and echoes it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID_RE.fullmatch(given) else uuid7().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode()
        await self.app(scope, receive, _adding_headers(send, [(b"x-request-id", request_id)]))


class BodyLimitMiddleware:
    """Bodies over `max_bytes` are refused with 413 before anything reads them: at once if
    Content-Length says so; a chunked body is read up to the limit, then replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds it to Content-Length
            return
        if _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"The request body is over {self.max_bytes} bytes")
        await _send_error(error, scope, receive, send)


class AuthMiddleware:
    """`Authorization: Bearer <key>` on every /v1 route; puts the tenant in the scope,
    then applies the key's rate limit.

    A bad key costs as little as possible: a key known to be unknown or revoked is refused
    without a lookup (see `KeyCache`), and an address past its failed-authentication
    limit (`AuthFailures`) is refused without one whatever key it sends, unless the key
    was seen valid recently. The address is the connection's peer, or what a trusted
    proxy forwarded (uvicorn's proxy headers, see `paysys api`).
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        resources: Any = scope["app"].state.resources
        client = scope.get("client")
        address = client[0] if client else ""
        key = self._bearer(scope)
        row = resources.keys.get(apikeys.hash_key(key)) if key is not None else None
        if row is None:
            try:
                row = await self._authenticate(resources, key, address)
            except PaysysError as exc:
                await _send_error(exc, scope, receive, send)
                return
            except UNAVAILABLE_ERRORS as exc:
                log.warning("database unavailable during authentication: %r", exc)
                await _send_error(ServiceUnavailable(), scope, receive, send)
                return
        scope.setdefault("state", {})["tenant_id"] = row["tenant_id"]
        limiter = resources.limiter
        if limiter is None:
            await self.app(scope, receive, send)
            return
        try:
            verdict = await limiter.check(str(row["id"]))
        except UNAVAILABLE_ERRORS as exc:
            # Fail open for reads; refuse writes that cannot be metered.
            if scope["method"] in ("GET", "HEAD"):
                await self.app(scope, receive, send)
                return
            log.warning("rate limiter unavailable: %r", exc)
            await _send_error(ServiceUnavailable(), scope, receive, send)
            return
        limit_headers = verdict.headers()
        if not verdict.allowed:
            await _send_error(
                RateLimited(
                    "Too many requests for this API key; retry later", headers=limit_headers
                ),
                scope,
                receive,
                send,
            )
            return
        encoded = [(k.lower().encode(), v.encode()) for k, v in limit_headers.items()]
        await self.app(scope, receive, _adding_headers(send, encoded))

    @staticmethod
    async def _authenticate(resources: Any, key: str | None, address: str) -> Any:
        """The key's row, for a key not in the cache of valid keys; or the refusal."""
        failures = resources.auth_failures
        digest = apikeys.hash_key(key) if key is not None else None
        retry_after = failures.over(address)
        if retry_after is not None and (digest is None or not resources.keys.known(digest)):
            raise RateLimited(
                "Too many failed authentications from this address; retry later",
                headers={"Retry-After": str(retry_after)},
            )
        row = None
        if digest is not None and not resources.keys.refused(digest):

            async def fetch() -> Any:
                async with resources.pool.acquire() as conn:
                    return await apikeys.tenant_for_key_hash(conn, digest)

            row = await resources.keys.lookup(digest, fetch)
        if row is None:
            failures.failed(address)
            raise Unauthorized() if key is None else Unauthorized("The API key is not valid")
        return row

    @staticmethod
    def _bearer(scope: Scope) -> str | None:
        raw = _header(scope, b"authorization")
        if raw is None:
            return None
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        scheme, _, key = text.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not apikeys.well_formed(key):
            return None
        return key
