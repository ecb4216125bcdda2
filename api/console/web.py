"""What every console page shares: the signed-in operator, the rendering of templates, the
answers to failures, and the headers.

The rules:

* A page is shown only to a valid session whose API key is still valid, checked on every
  request the way the API checks a Bearer key (`KeyCache`, told at once of revocations),
  and under that key's rate limit; otherwise the browser is sent to sign in. Every read a
  page makes is scoped to that key's tenant.
* A failure is a page, never a stack trace nor problem+json: anything of another tenant,
  or that does not exist, or a malformed id, is the same 404 page; a dependency that is
  down is a 503 page.
* Every answer forbids framing, sniffing and caching (tenant data stays out of shared
  caches and the back button of a signed-out browser), and its Content-Security-Policy
  allows nothing but this server's own styles, scripts and images.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.console import rendering
from api.console.sessions import SESSION_COOKIE, Session, SessionStore
from api.errors import UNAVAILABLE_ERRORS
from api.resources import Resources
from shared import apikeys
from shared.errors import NotFound, RateLimited

log = logging.getLogger("paysys.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NO_STORE = {"Cache-Control": "no-store", **SECURITY_HEADERS}


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""

    def __init__(self, reason: str | None = None):
        super().__init__(reason or "sign in")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in operator: a session whose key is still valid."""

    token: str
    session: Session
    tenant_id: uuid.UUID

    @property
    def tenant_name(self) -> str:
        return self.session.tenant_name

    @property
    def csrf(self) -> str:
        return self.session.csrf


def resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


def session_store(res: Resources) -> SessionStore:
    return SessionStore(res.redis, res.settings.redis_prefix)


async def key_row(res: Resources, digest: bytes) -> Any | None:
    """The API key's row while it is valid, as the API's authentication finds it."""
    row = res.keys.get(digest)
    if row is not None or res.keys.refused(digest):
        return row

    async def fetch() -> Any:
        async with res.pool.acquire() as conn:
            return await apikeys.tenant_for_key_hash(conn, digest)

    return await res.keys.lookup(digest, fetch)


async def signed_in(request: Request) -> Viewer:
    res = resources(request)
    token = request.cookies.get(SESSION_COOKIE)
    store = session_store(res)
    session = await store.load(token)
    if token is None or session is None:
        raise SignInRequired("Your session has ended; sign in again." if token else None)
    row = await key_row(res, session.digest)
    if row is None or str(row["tenant_id"]) != session.tenant_id:
        await store.delete(token)
        raise SignInRequired("The API key of your session is no longer valid; sign in again.")
    request.scope.setdefault("state", {})["tenant_id"] = row["tenant_id"]
    if res.limiter is not None:
        try:
            verdict = await res.limiter.check(str(row["id"]))
        except UNAVAILABLE_ERRORS:
            verdict = None  # reads go on without the limiter, as in the API
        if verdict is not None and not verdict.allowed:
            raise RateLimited(
                "Too many requests for this API key; retry later", headers=verdict.headers()
            )
    viewer = Viewer(token=token, session=session, tenant_id=session.tenant)
    request.state.console_viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(signed_in)]


def parse_id(text: str) -> uuid.UUID:
    """A path's id; anything else is the same 404 as an id of nobody's."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("No such page") from None


def page(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    viewer = getattr(request.state, "console_viewer", None)
    context.setdefault("wallet_names", {})
    body = rendering.render(template, request=request, viewer=viewer, **context)
    return HTMLResponse(body, status_code=status_code, headers={**NO_STORE, **(headers or {})})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


def sign_in_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or target.startswith("/console/sign-"):
        return "/console/sign-in"
    return f"/console/sign-in?next={quote(target, safe='')}"


class ConsoleRoute(APIRoute):
    """A console route: its failures are pages (see the module's rules)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                url = sign_in_url(request)
                if exc.reason:
                    url += ("&" if "?" in url else "?") + "ended=1"
                return redirect(url)
            except (NotFound, RequestValidationError):
                return error_page(request, 404, "Not found", "There is nothing here.")
            except RateLimited as exc:
                return error_page(
                    request, 429, "Too many requests", exc.detail, headers=exc.headers
                )
            except UNAVAILABLE_ERRORS as exc:
                log.warning("console: dependency unavailable on %s: %r", request.url.path, exc)
                return error_page(
                    request,
                    503,
                    "Service unavailable",
                    "PostgreSQL or Redis does not answer; try again in a moment.",
                    headers={"Retry-After": "5"},
                )
            except Exception:
                log.exception("console: unexpected error on %s", request.url.path)
                return error_page(request, 500, "Internal error", "This page could not be shown.")

        return console_handler


def error_page(
    request: Request,
    status: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(request, "error.html", status, headers, title=title, status=status, message=message)
