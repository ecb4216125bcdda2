"""The console's ledger pages: finding an account, a wallet with its statement, an
operation (a hold, a capture, a reversal...) with its timeline, postings and links, and a
batch with its items.

Every read is the tenant's (`viewer.tenant_id`) and a keyset page of an index (the API's
own queries where it has them, `reads` for the rest); anything not the tenant's is a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.console import cursors, reads
from api.console.web import ConsoleRoute, ViewerDep, page, parse_id, redirect, resources
from shared.accounts import repository as accounts
from shared.asyncdb import Record
from shared.errors import NotFound
from shared.ledger import reads as ledger
from shared.operations import repository as operations

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = 50
SMALL_PAGE = 20
PAGE_FOR_KIND = {
    "wallet": "/console/wallets/{}",
    "operation": "/console/operations/{}",
    "batch": "/console/batches/{}",
    "event": "/console/events/{}",
    "webhook": "/console/webhooks/{}",
}


def _split(rows: list[Record], limit: int) -> tuple[list[Record], Record | None]:
    """A page fetched with limit + 1 rows: the rows to show, and the last one shown if
    there is a next page."""
    shown = rows[:limit]
    return shown, (shown[-1] if len(rows) > limit and shown else None)


@router.get("/console/accounts")
async def accounts_page(request: Request, viewer: ViewerDep) -> Response:
    res = resources(request)
    query = (request.query_params.get("q") or "").strip()[:200]
    cursor = request.query_params.get("cursor")
    try:
        wanted = uuid.UUID(query) if query else None
    except ValueError:
        wanted = None
    async with res.pool.acquire() as conn:
        if wanted is not None:
            found = await reads.find_id(conn, wanted, viewer.tenant_id)
            if found is not None:
                return redirect(PAGE_FOR_KIND[found["kind"]].format(found["id"]))
            rows: list[Record] = []
        elif query:
            after = cursors.parse_name(cursor)
            rows = await reads.search_accounts(
                conn, viewer.tenant_id, query.lower(), after, PAGE + 1
            )
        else:
            before = cursors.parse_uuid(cursor)
            rows = await accounts.list_accounts(conn, viewer.tenant_id, before, PAGE + 1)
    shown, last = _split(rows, PAGE)
    next_cursor = None
    if last is not None:
        next_cursor = cursors.name(last["sort_name"], last["id"]) if query else last["id"].hex
    return page(
        request,
        "accounts.html",
        query=query,
        searched_id=wanted is not None,
        accounts=shown,
        next_cursor=next_cursor,
        first_page=not cursor,
    )


@router.get("/console/wallets/{wallet_id}")
async def wallet_page(request: Request, viewer: ViewerDep, wallet_id: str) -> Response:
    res = resources(request)
    wid = parse_id(wallet_id)
    before_entry = cursors.parse_number(request.query_params.get("postings"))
    before_position = cursors.parse_number(request.query_params.get("operations"))
    async with res.pool.acquire() as conn:
        wallet = await reads.wallet(conn, wid, viewer.tenant_id)
        if wallet is None:
            raise NotFound("No such wallet")
        holds = await reads.active_holds(conn, wid, viewer.tenant_id, SMALL_PAGE + 1)
        postings = await ledger.list_postings(conn, wid, before_entry, PAGE + 1)
        queued = await reads.queued_operations(
            conn, wid, viewer.tenant_id, before_position, SMALL_PAGE + 1
        )
        names = await reads.wallet_names(conn, queued, viewer.tenant_id)
    postings, last_posting = _split(postings, PAGE)
    queued, last_queued = _split(queued, SMALL_PAGE)
    return page(
        request,
        "wallet.html",
        wallet=wallet,
        holds=holds[:SMALL_PAGE],
        more_holds=len(holds) > SMALL_PAGE,
        postings=postings,
        postings_next=last_posting["entry_no"] if last_posting is not None else None,
        postings_first=before_entry is None,
        operations=queued,
        operations_next=last_queued["position"] if last_queued is not None else None,
        operations_first=before_position is None,
        wallet_names=names,
    )


@router.get("/console/holds/{hold_id}")
async def hold_page(hold_id: str, viewer: ViewerDep) -> Response:
    # A hold's id is its hold operation's: the operation's page shows the hold.
    return redirect(f"/console/operations/{parse_id(hold_id)}")


def timeline(operation: Record, hold: Record | None) -> list[tuple[str, datetime, str]]:
    """What happened to an operation (and to its hold), in order."""
    events: list[tuple[str, datetime, str]] = [("Accepted", operation["created_at"], "")]
    if operation["completed_at"] is not None:
        label = "Applied" if operation["status"] == "succeeded" else "Failed"
        note = operation["error_code"] or ""
        events.append((label, operation["completed_at"], note))
    if hold is not None and hold["hold_status"] not in (None, "held"):
        events.append((f"Hold {hold['hold_status']}", hold["updated_at"], ""))
    return sorted(events, key=lambda event: event[1])


@router.get("/console/operations/{operation_id}")
async def operation_page(request: Request, viewer: ViewerDep, operation_id: str) -> Response:
    res = resources(request)
    oid = parse_id(operation_id)
    tenant = viewer.tenant_id
    context: dict[str, Any] = {"hold": None, "original": None, "postings": []}
    async with res.pool.acquire() as conn:
        operation = await operations.get_operation(conn, oid, tenant)
        if operation is None:
            raise NotFound("No such operation")
        hold_id = oid if operation["type"] == "hold" else operation["hold_id"]
        if hold_id is not None:
            context["hold"] = await operations.get_hold(conn, hold_id, tenant)
        if operation["reverses_operation_id"] is not None:
            context["original"] = await operations.get_operation(
                conn, operation["reverses_operation_id"], tenant
            )
        if operation["transaction_id"] is not None:
            context["postings"] = await reads.transaction_postings(
                conn, operation["transaction_id"], tenant
            )
        related = await reads.related_operations(conn, oid, tenant, PAGE + 1)
        shown = [operation, *related[:PAGE]]
        if context["original"] is not None:
            shown.append(context["original"])
        names = await reads.wallet_names(conn, shown, tenant)
    own_hold = context["hold"] if operation["type"] == "hold" else None
    return page(
        request,
        "operation.html",
        operation=operation,
        timeline=timeline(operation, own_hold),
        related=related[:PAGE],
        more_related=len(related) > PAGE,
        wallet_names=names,
        **context,
    )


@router.get("/console/batches/{batch_id}")
async def batch_page(request: Request, viewer: ViewerDep, batch_id: str) -> Response:
    res = resources(request)
    bid = parse_id(batch_id)
    after = cursors.parse_number(request.query_params.get("cursor"))
    async with res.pool.acquire() as conn:
        batch = await operations.get_batch(conn, bid, viewer.tenant_id)
        if batch is None:
            raise NotFound("No such batch")
        items = await operations.list_batch_operations(conn, bid, viewer.tenant_id, after, PAGE + 1)
        items, last = _split(items, PAGE)
        names = await reads.wallet_names(conn, items, viewer.tenant_id)
    return page(
        request,
        "batch.html",
        wallet_names=names,
        batch=batch,
        items=items,
        next_cursor=last["batch_offset"] if last is not None else None,
        first_page=after is None,
    )
