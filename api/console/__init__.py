"""The console: read-only pages, served by the API under `/console`, for the people who
operate paysys and answer its customers.

The rules it keeps, each where it is kept:

* It is read-only: no page changes the ledger, and the only POSTs sign in and out
  (`signin`).
* Sign-in takes an API key and checks it as the API does; the browser keeps only an
  opaque session token (`sessions`); a revoked key stops working on the next page
  (`web.signed_in`).
* Tenant isolation is the API's: every read names the session's tenant, and another
  tenant's id is a 404 page, the same as an id of nobody's (`web`, `reads`).
* No page's cost grows with the ledger: keyset pages of indexes, no counts over big
  tables (`reads`, `system_reads`).
* Everything it serves comes from this package: templates and static files, no CDN and no
  build step (`rendering`). It is outside `/v1` and outside the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.console import feeds, ledger, signin, system
from api.console.web import ConsoleRoute, SignInRequired, redirect, signed_in
from shared.errors import NotFound

_fallback = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


@_fallback.get("/console/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Any other console path: the 404 page (with the menu, for a signed-in operator)."""
    if rest == "":
        return redirect("/console/accounts")
    try:
        await signed_in(request)
    except SignInRequired:
        pass
    raise NotFound("No such page")


router = APIRouter(include_in_schema=False)
for part in (signin.router, ledger.router, feeds.router, system.router, _fallback):
    router.include_router(part)

__all__ = ["router"]
