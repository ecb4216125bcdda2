"""Replenishment batches: up to 10,000 top-ups accepted (or refused) as one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from api import serialize
from api.deps import (
    BatchItemCursor,
    Limit,
    RequestIdDep,
    RequiredIdempotencyKey,
    ResourcesDep,
    TenantDep,
    Wait,
    problem_responses,
)
from api.jsonbody import JsonRoute
from api.responses import JSON
from api.routes.common import long_poll, operation_accepted
from api.schemas import Batch, BatchCreate, BatchValidation, OperationPage
from shared.errors import FieldError, NotFound, ValidationFailed
from shared.intake import repository as repo
from shared.intake import service as intake
from shared.intake.repository import Record
from shared.money import SUPPORTED_CURRENCIES

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["replenishment batches"])

BatchId = Annotated[UUID, Path(description="Batch id")]


def _items(body: BatchCreate) -> list[intake.BatchItem]:
    unsupported = [
        FieldError(["body", "items", index, "currency"], 'Only "USD" is supported')
        for index, item in enumerate(body.items)
        if item.currency not in SUPPORTED_CURRENCIES
    ]
    if unsupported:
        raise ValidationFailed(unsupported, "Some items have an unsupported currency")
    return [
        intake.BatchItem(item.wallet_id, item.amount, item.currency, item.reference)
        for item in body.items
    ]


@router.post(
    "/replenishment-batches",
    status_code=202,
    response_model=Batch,
    summary="Top up many wallets at once (1-10,000 items, all or nothing)",
    responses=problem_responses(400, 409, 413, 422, 429),
)
async def create_batch(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    body: BatchCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    items = _items(body)
    accepted = await intake.create_batch(
        res.pool, tenant_id=tenant, idempotency_key=idempotency_key, items=items, request_id=req_id
    )
    document = serialize.batch(accepted.resource)
    return operation_accepted(
        res,
        accepted,
        document,
        f"/v1/replenishment-batches/{document['id']}",
        operations=len(items),
        request_id=req_id,
        tenant=tenant,
    )


@router.post(
    "/replenishment-batch-validations",
    response_model=BatchValidation,
    summary="Check a batch (wallets included) without accepting it",
    description="200 when the same body would be accepted by POST /v1/replenishment-batches, "
    "422 naming every bad item otherwise. Nothing is created.",
    responses=problem_responses(413, 422, 429),
)
async def validate_batch(res: ResourcesDep, tenant: TenantDep, body: BatchCreate) -> Response:
    items = _items(body)
    await intake.validate_batch(res.pool, tenant_id=tenant, items=items)
    return JSON({"valid": True, "total": len(items)})


@router.get(
    "/replenishment-batches/{batch_id}",
    response_model=Batch,
    summary="Get a batch and its counts; with ?wait=S, wait up to S seconds for completion",
    responses=problem_responses(404, 422, 429),
)
async def get_batch(
    res: ResourcesDep, tenant: TenantDep, batch_id: BatchId, wait: Wait = None
) -> Response:
    async def fetch() -> Record | None:
        async with res.pool.acquire() as conn:
            return await repo.get_batch(conn, batch_id, tenant)

    row = await long_poll(res.hub, f"b:{batch_id}", wait, fetch, lambda r: r["pending"] == 0)
    if row is None:
        raise NotFound(f"Batch {batch_id} not found")
    return JSON(serialize.batch(row))


@router.get(
    "/replenishment-batches/{batch_id}/operations",
    response_model=OperationPage,
    summary="The batch's replenishments, in the batch's order",
    responses=problem_responses(404, 422, 429),
)
async def list_batch_operations(
    res: ResourcesDep,
    tenant: TenantDep,
    batch_id: BatchId,
    limit: Limit = 50,
    cursor: BatchItemCursor = None,
) -> Response:
    after = serialize.decode_number_cursor(cursor)
    async with res.pool.acquire() as conn:
        if not await repo.batch_exists(conn, batch_id, tenant):
            raise NotFound(f"Batch {batch_id} not found")
        rows = await repo.list_batch_operations(conn, batch_id, tenant, after, limit + 1)
    return JSON(
        serialize.page(
            rows,
            limit,
            serialize.operation,
            lambda r: serialize.number_cursor("i", r["batch_offset"]),
        )
    )
