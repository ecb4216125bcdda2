"""Pieces the resource routes share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from starlette.responses import Response

from api import serialize
from api.resources import CompletionHub, Resources
from api.responses import JSON
from shared import metrics
from shared.errors import UnsupportedCurrency
from shared.intake.repository import Record
from shared.intake.service import Accepted
from shared.money import SUPPORTED_CURRENCIES

log = logging.getLogger("paysys.api")


def check_currency(currency: str) -> None:
    if currency not in SUPPORTED_CURRENCIES:
        raise UnsupportedCurrency('Only "USD" is supported')


def operation_accepted(
    res: Resources,
    accepted: Accepted,
    document: dict[str, Any],
    location: str,
    *,
    operations: int,
    request_id: str | None,
    tenant: UUID,
) -> Response:
    """What every accepting route does once its statement committed: wake a worker, count
    and log what is new (a replay is neither), and answer."""
    if not accepted.replayed:
        res.doorbell.ring()
        batch = "total" in document
        kind = "replenishment" if batch else document["type"]
        metrics.operations_accepted.labels(kind).inc(operations)
        extra = {
            "type": kind,
            "operations": operations,
            "request_id": request_id,
            "tenant_id": str(tenant),
            "batch_id" if batch else "operation_id": document["id"],
        }
        log.info("batch accepted" if batch else "operation accepted", extra=extra)
    return accepted_response(accepted, document, location)


def single_operation_accepted(
    res: Resources, accepted: Accepted, *, request_id: str | None, tenant: UUID
) -> Response:
    """`operation_accepted` for a route that accepts one operation."""
    document = serialize.operation(accepted.resource)
    return operation_accepted(
        res,
        accepted,
        document,
        f"/v1/operations/{document['id']}",
        operations=1,
        request_id=request_id,
        tenant=tenant,
    )


def accepted_response(accepted: Accepted, document: dict[str, Any], location: str) -> Response:
    headers = {"Location": location}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSON(document, status_code=accepted.status_code, headers=headers)


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
