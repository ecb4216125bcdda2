"""Signing in and out of the console, and its static files.

The rules:

* Sign-in takes an API key and checks it as the API checks a Bearer key: the same cache
  of valid and refused keys, and the same limit on failed attempts per client address
  (`PAYSYS_AUTH_FAILURE_LIMIT`). The key is then forgotten: the session keeps its digest.
* Sign-in and sign-out are POSTs with a CSRF token (see `sessions`); a refused token
  changes nothing. Each sign-in makes a new session (an old cookie's session is ended),
  so a session id planted before sign-in is worth nothing after it.
* After sign-in the browser goes where it was going, if that is a console page; never
  anywhere else.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.console import rendering, sessions
from api.console.reads import tenant_name
from api.console.web import (
    SECURITY_HEADERS,
    ConsoleRoute,
    SignInRequired,
    key_row,
    page,
    redirect,
    resources,
    session_store,
    signed_in,
)
from api.resources import Resources
from shared import apikeys
from shared.errors import NotFound, RateLimited

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

HOME = "/console/accounts"
MAX_FORM_BYTES = 8192
_NEXT_RE = re.compile(r"/console/[A-Za-z0-9/_\-.?=&%]*")


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console page of this server, or the home page."""
    if (
        value
        and _NEXT_RE.fullmatch(value)
        and "//" not in value
        and not value.startswith(("/console/sign-", "/console/static"))
    ):
        return value
    return HOME


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first of each), refused past a few kilobytes."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def sign_in_form(
    request: Request,
    *,
    status_code: int = 200,
    message: str | None = None,
    error: str | None = None,
    next_url: str = HOME,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form, with a fresh CSRF token in it and in its cookie."""
    token = sessions.new_token()
    response = page(
        request,
        "sign_in.html",
        status_code,
        headers,
        csrf=token,
        message=message,
        error=error,
        next_url=next_url,
    )
    sessions.set_csrf_cookie(response, request, token)
    return response


@router.get("/console")
async def home() -> Response:
    return redirect(HOME)


@router.get("/console/sign-in")
async def sign_in_page(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    try:
        await signed_in(request)
        return redirect(next_url)
    except SignInRequired:
        pass
    message = None
    if request.query_params.get("ended"):
        message = "Your session has ended; sign in again."
    elif request.query_params.get("signed_out"):
        message = "You are signed out."
    return sign_in_form(request, message=message, next_url=next_url)


async def verify_key(res: Resources, key: str, address: str) -> Any | None:
    """The key's row if it is valid; None (a failure counted) if not."""
    digest = apikeys.hash_key(key) if apikeys.well_formed(key) else None
    retry_after = res.auth_failures.over(address)
    if retry_after is not None and (digest is None or not res.keys.known(digest)):
        raise RateLimited(
            "Too many failed sign-ins from this address; retry later",
            headers={"Retry-After": str(retry_after)},
        )
    row = await key_row(res, digest) if digest is not None else None
    if row is None:
        res.auth_failures.failed(address)
    return row


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    res = resources(request)
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    expected = request.cookies.get(sessions.CSRF_COOKIE)
    if not sessions.same_origin(request) or not sessions.tokens_match(
        expected, form.get("csrf_token")
    ):
        return sign_in_form(
            request,
            status_code=403,
            error="The sign-in form had expired; please sign in again.",
            next_url=next_url,
        )
    address = request.client.host if request.client else ""
    key = form.get("api_key", "").strip()
    row = await verify_key(res, key, address)
    if row is None:
        return sign_in_form(
            request, status_code=401, error="That API key is not valid.", next_url=next_url
        )
    store = session_store(res)
    await store.delete(request.cookies.get(sessions.SESSION_COOKIE))
    async with res.pool.acquire() as conn:
        name = await tenant_name(conn, row["tenant_id"])
    token, _ = await store.create(
        apikeys.hash_key(key), uuid.UUID(str(row["id"])), row["tenant_id"], name
    )
    response = redirect(next_url)
    sessions.set_session_cookie(response, request, token)
    sessions.clear_csrf_cookie(response, request)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    res = resources(request)
    form = await read_form(request)
    token = request.cookies.get(sessions.SESSION_COOKIE)
    store = session_store(res)
    session = await store.load(token)
    if session is not None and not (
        sessions.same_origin(request)
        and sessions.tokens_match(session.csrf, form.get("csrf_token"))
    ):
        return page(
            request,
            "error.html",
            403,
            title="Sign-out refused",
            status=403,
            message="This sign-out did not come from the console's own page; you are still "
            "signed in.",
        )
    await store.delete(token)
    response = redirect("/console/sign-in?signed_out=1")
    sessions.clear_session_cookie(response, request)
    return response


@router.get("/console/static/{name}")
async def static(name: str, request: Request) -> Response:
    asset = rendering.ASSETS.get(name)
    if asset is None:
        raise NotFound("No such file")
    versioned = request.query_params.get("v") == asset.version
    cache = "public, max-age=31536000, immutable" if versioned else "no-cache"
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": f'"{asset.version}"'}
    if request.headers.get("if-none-match") == f'"{asset.version}"':
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
