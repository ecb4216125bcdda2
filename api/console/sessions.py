"""Console sessions and their cookies: who is signed in, kept on the server; the browser
holds only a random token.

The rules:

* The session cookie carries 256 random bits and nothing else. Redis keeps the session
  under the token's SHA-256 (a copy of Redis yields no cookie that works): the API key's
  SHA-256 digest, never the key; its id and tenant; the CSRF token of the session's forms.
  It lives `SESSION_SECONDS` from sign-in; sign-out deletes it. Redis losing it only
  signs the operator out.
* The cookie is HttpOnly, `Path=/console`, `Secure` when the request came over https, and
  `SameSite=Lax`: a link to a console page from a ticket opens it signed in, while a
  cross-site POST never carries it. GETs change nothing; every POST (sign-in, sign-out)
  must carry a CSRF token and, when the browser sends one, a same-origin `Origin`.
* Sign-in has no session yet: its CSRF token is a double-submit cookie (SameSite=Strict),
  which a cross-site page can neither read nor set, matched against the form's field.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "paysys_console"
CSRF_COOKIE = "paysys_console_csrf"
COOKIE_PATH = "/console"
SESSION_SECONDS = 8 * 3600
CSRF_COOKIE_SECONDS = 3600
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def well_formed(token: str | None) -> bool:
    return token is not None and _TOKEN_RE.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class Session:
    key_digest: str  # hex SHA-256 of the API key, as `api_key.key_hash` stores it
    key_id: str
    tenant_id: str
    tenant_name: str
    csrf: str
    created_at: float

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(self.key_digest)

    @property
    def tenant(self) -> uuid.UUID:
        return uuid.UUID(self.tenant_id)


class SessionStore:
    """Sessions in Redis, each under its token's digest, expiring by themselves."""

    def __init__(self, redis: aioredis.Redis, prefix: str):
        self._redis = redis
        self._prefix = f"{prefix}:console:session:"

    def _key(self, token: str) -> str:
        return self._prefix + hashlib.sha256(token.encode("ascii")).hexdigest()

    async def create(
        self, key_digest: bytes, key_id: uuid.UUID, tenant_id: uuid.UUID, tenant_name: str
    ) -> tuple[str, Session]:
        token = new_token()
        session = Session(
            key_digest=key_digest.hex(),
            key_id=str(key_id),
            tenant_id=str(tenant_id),
            tenant_name=tenant_name,
            csrf=new_token(),
            created_at=time.time(),
        )
        await self._redis.set(self._key(token), orjson.dumps(asdict(session)), ex=SESSION_SECONDS)
        return token, session

    async def load(self, token: str | None) -> Session | None:
        if token is None or not well_formed(token):
            return None
        raw = await self._redis.get(self._key(token))
        if raw is None:
            return None
        return Session(**orjson.loads(raw))

    async def delete(self, token: str | None) -> None:
        if token is not None and well_formed(token):
            await self._redis.delete(self._key(token))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=CSRF_COOKIE_SECONDS,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def clear_csrf_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        CSRF_COOKIE,
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site: its `Origin` names
    another host than the one asked (the scheme is not compared: behind a proxy that ends
    TLS, the browser's https is the server's http), or, without an `Origin`, its
    `Sec-Fetch-Site` says so."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site") in (None, "same-origin", "none")
    host = request.headers.get("host")
    return host is not None and urlsplit(origin).netloc == host
