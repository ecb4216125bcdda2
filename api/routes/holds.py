"""Holds: money reserved on a wallet, then captured, voided or left to expire."""

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
    problem_responses,
)
from api.jsonbody import JsonRoute
from api.resources import Resources
from api.responses import Model
from api.routes.common import accept_derived, accept_one
from shared.asyncdb import Record
from shared.errors import NotFound
from shared.operations import repository as operations
from shared.operations.capture import Capture, CaptureCreate
from shared.operations.hold import Hold, HoldCreate
from shared.operations.kind import NewOperation
from shared.operations.void import Void, VoidCreate
from shared.resources import serialize
from shared.resources.schemas import Hold as HoldDocument
from shared.resources.schemas import Operation

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["holds"])

HoldId = Annotated[UUID, Path(description="Hold id (its hold operation's id)")]


async def _hold(res: Resources, hold_id: UUID, tenant: UUID) -> Record:
    async with res.pool.acquire() as conn:
        row = await operations.get_hold(conn, hold_id, tenant)
    if row is None:
        raise NotFound(f"Hold {hold_id} not found")
    return row


@router.post(
    "/holds",
    status_code=202,
    response_model=Operation,
    summary="Reserve money on a wallet, to capture or void later (asynchronous: poll the "
    "operation; its id is the hold's)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def create_hold(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    body: HoldCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    return await accept_one(
        res, Hold.new(body), tenant=tenant, idempotency_key=idempotency_key, request_id=req_id
    )


@router.get(
    "/holds/{hold_id}",
    response_model=HoldDocument,
    summary="Get a hold",
    responses=problem_responses(404, 422, 429),
)
async def get_hold(res: ResourcesDep, tenant: TenantDep, hold_id: HoldId) -> Response:
    return Model(serialize.hold(await _hold(res, hold_id, tenant)))


@router.post(
    "/holds/{hold_id}/capture",
    status_code=202,
    response_model=Operation,
    summary="Move a hold's money to its destination (all of it by default) and release the "
    "hold (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def capture_hold(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    hold_id: HoldId,
    body: CaptureCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    async def derive() -> NewOperation:
        return Capture.new(body, await _hold(res, hold_id, tenant))

    return await accept_derived(
        res,
        Capture.name,
        Capture.asked(hold_id, body),
        derive,
        tenant=tenant,
        idempotency_key=idempotency_key,
        request_id=req_id,
    )


@router.post(
    "/holds/{hold_id}/void",
    status_code=202,
    response_model=Operation,
    summary="Release a hold without moving money (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def void_hold(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    hold_id: HoldId,
    body: VoidCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    async def derive() -> NewOperation:
        return Void.new(body, await _hold(res, hold_id, tenant))

    return await accept_derived(
        res,
        Void.name,
        Void.asked(hold_id, body),
        derive,
        tenant=tenant,
        idempotency_key=idempotency_key,
        request_id=req_id,
    )
