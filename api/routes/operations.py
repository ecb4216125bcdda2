"""Transfers, and the status of any operation (with long poll)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from api.deps import (
    RequestIdDep,
    RequiredIdempotencyKey,
    ResourcesDep,
    TenantDep,
    Wait,
    problem_responses,
)
from api.jsonbody import JsonRoute
from api.responses import Model
from api.routes.common import accept_derived, accept_one, long_poll
from shared.asyncdb import Record
from shared.errors import NotFound
from shared.operations import repository as operations
from shared.operations.kind import NewOperation
from shared.operations.reversal import Reversal, ReversalCreate
from shared.operations.transfer import Transfer, TransferCreate
from shared.resources import serialize
from shared.resources.schemas import Operation

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["operations"])

OperationId = Annotated[UUID, Path(description="Operation id")]


@router.post(
    "/transfers",
    status_code=202,
    response_model=Operation,
    summary="Move money between two wallets (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def create_transfer(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    body: TransferCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    return await accept_one(
        res, Transfer.new(body), tenant=tenant, idempotency_key=idempotency_key, request_id=req_id
    )


@router.get(
    "/operations/{operation_id}",
    response_model=Operation,
    summary="Get an operation; with ?wait=S, wait up to S seconds for it to be final",
    responses=problem_responses(404, 422, 429),
)
async def get_operation(
    res: ResourcesDep,
    tenant: TenantDep,
    operation_id: OperationId,
    wait: Wait = None,
) -> Response:
    async def fetch() -> Record | None:
        async with res.pool.acquire() as conn:
            return await operations.get_operation(conn, operation_id, tenant)

    row = await long_poll(
        res.hub, tenant, f"o:{operation_id}", wait, fetch, lambda r: r["status"] != "pending"
    )
    if row is None:
        raise NotFound(f"Operation {operation_id} not found")
    return Model(serialize.operation(row))


@router.post(
    "/operations/{operation_id}/reversals",
    status_code=202,
    response_model=Operation,
    summary="Give back a succeeded transfer, replenishment, withdrawal or capture, in part "
    "or whole (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def create_reversal(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    operation_id: OperationId,
    body: ReversalCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    async def derive() -> NewOperation:
        async with res.pool.acquire() as conn:
            original = await operations.get_operation(conn, operation_id, tenant)
        if original is None:
            raise NotFound(f"Operation {operation_id} not found")
        return Reversal.new(body, original)

    return await accept_derived(
        res,
        Reversal.name,
        Reversal.asked(operation_id, body),
        derive,
        tenant=tenant,
        idempotency_key=idempotency_key,
        request_id=req_id,
    )
