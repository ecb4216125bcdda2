"""Pieces the resource routes share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from pydantic import BaseModel
from starlette.responses import Response

from api.hub import CompletionHub
from api.resources import Resources
from api.responses import Model
from shared import metrics
from shared.asyncdb import Record
from shared.errors import UnsupportedCurrency
from shared.intake.idempotency import Accepted, replay, request_hash
from shared.intake.operations import accept_operation
from shared.money import SUPPORTED_CURRENCIES
from shared.operations.kind import NewOperation, asked_meaning
from shared.resources import serialize

log = logging.getLogger("paysys.api")


def check_currency(currency: str) -> None:
    if currency not in SUPPORTED_CURRENCIES:
        raise UnsupportedCurrency('Only "USD" is supported')


def operation_accepted(
    res: Resources,
    accepted: Accepted,
    *,
    kind: str,
    operations: int,
    request_id: str | None,
    tenant: UUID,
    batch: bool = False,
) -> None:
    """What every accepting route does once its statement committed: wake a worker, and
    count and log what is new (a replay is neither)."""
    if accepted.replayed:
        return
    res.doorbell.ring()
    metrics.operations_accepted.labels(kind).inc(operations)
    extra = {
        "type": kind,
        "operations": operations,
        "request_id": request_id,
        "tenant_id": str(tenant),
        "batch_id" if batch else "operation_id": str(accepted.resource["id"]),
    }
    log.info("batch accepted" if batch else "operation accepted", extra=extra)


async def accept_one(
    res: Resources,
    new: NewOperation,
    *,
    tenant: UUID,
    idempotency_key: str,
    request_id: str | None,
) -> Response:
    """The whole of a route that accepts one operation, of any kind."""
    check_currency(new.currency)
    accepted = await accept_operation(
        res.lanes,
        new,
        tenant_id=tenant,
        idempotency_key=idempotency_key,
        request_id=request_id,
        admission=res.backlog.retry_after,
    )
    operation_accepted(
        res, accepted, kind=new.kind, operations=1, request_id=request_id, tenant=tenant
    )
    return accepted_response(
        accepted,
        serialize.operation(accepted.resource),
        f"/v1/operations/{accepted.resource['id']}",
    )


async def accept_derived(
    res: Resources,
    kind: str,
    asked: dict[str, object],
    derive: Callable[[], Awaitable[NewOperation]],
    *,
    tenant: UUID,
    idempotency_key: str,
    request_id: str | None,
) -> Response:
    """A route whose operation is derived from another row (a capture from its hold, a
    reversal from its original): a replay is answered first, from what was asked, since
    what the row allows may have changed since (a hold captured, an operation reversed
    in full); then `derive` (which may refuse) and `accept_one`."""
    digest = request_hash(kind, asked_meaning(kind, asked))
    async with res.pool.acquire() as conn:
        replayed = await replay(conn, tenant, idempotency_key, digest)
    if replayed is not None:
        return accepted_response(
            replayed,
            serialize.operation(replayed.resource),
            f"/v1/operations/{replayed.resource['id']}",
        )
    new = await derive()
    return await accept_one(
        res, new, tenant=tenant, idempotency_key=idempotency_key, request_id=request_id
    )


def accepted_response(accepted: Accepted, document: BaseModel, location: str) -> Response:
    headers = {"Location": location}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Model(document, status_code=accepted.status_code, headers=headers)


# A long poll re-reads the database at least this often, in case an announcement was lost.
WAIT_RECHECK_SECONDS = 1.0


async def long_poll(
    hub: CompletionHub,
    tenant: UUID,
    key: str,
    wait: float | None,
    fetch: Callable[[], Awaitable[Record | None]],
    final: Callable[[Record], bool],
    still_pending: Callable[[], Awaitable[bool]] | None = None,
) -> Record | None:
    """Read a resource; with `wait`, read it again whenever the worker announces progress
    on `key`, until it is final or `wait` seconds have passed.

    The watch is registered before the first read: an announcement made while a read is
    under way must wake the poll, not be lost until the next re-read. Re-reads are shared
    by every waiter of the resource (see `CompletionHub.read`). A tenant over its share of
    waiting polls is answered at once, with the resource as it is. `still_pending`, if
    given, is a cheaper question asked on each wake-up: while it says yes, the full read
    waits for the end of the poll.
    """
    if not wait:
        return await fetch()
    deadline = time.monotonic() + wait
    with hub.watch(key, tenant) as changed:
        if changed is None:
            return await fetch()
        row = await hub.read(tenant, key, fetch)
        stale = False
        while row is not None and not final(row) and not hub.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), timeout=min(remaining, WAIT_RECHECK_SECONDS))
            except TimeoutError:
                pass
            changed.clear()
            if (
                still_pending is not None
                and deadline > time.monotonic()
                and await hub.read(
                    tenant, key, still_pending, WAIT_RECHECK_SECONDS / 2, variant="pending?"
                )
            ):
                stale = True
                continue
            row = await hub.read(tenant, key, fetch, WAIT_RECHECK_SECONDS / 2)
            stale = False
        if stale:
            row = await fetch()
    return row
