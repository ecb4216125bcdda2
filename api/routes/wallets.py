"""Wallets: balance, statement, and replenishments (top-ups)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from api import serialize
from api.deps import (
    Limit,
    PostingCursor,
    RequestIdDep,
    RequiredIdempotencyKey,
    ResourcesDep,
    TenantDep,
    problem_responses,
)
from api.jsonbody import JsonRoute
from api.responses import JSON
from api.routes.common import check_currency, single_operation_accepted
from api.schemas import Operation, PostingPage, ReplenishmentCreate, Wallet
from shared.errors import NotFound
from shared.intake import repository as repo
from shared.intake import service as intake

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["wallets"])

WalletId = Annotated[UUID, Path(description="Wallet id")]


@router.get(
    "/wallets/{wallet_id}",
    response_model=Wallet,
    summary="Get a wallet and its balance",
    responses=problem_responses(404, 422, 429),
)
async def get_wallet(
    res: ResourcesDep,
    tenant: TenantDep,
    wallet_id: WalletId,
) -> Response:
    async with res.pool.acquire() as conn:
        row = await repo.get_wallet(conn, wallet_id, tenant)
    if row is None:
        raise NotFound(f"Wallet {wallet_id} not found")
    return JSON(serialize.wallet(row))


@router.get(
    "/wallets/{wallet_id}/postings",
    response_model=PostingPage,
    summary="The wallet's statement: postings, newest first, with the balance after each",
    responses=problem_responses(404, 422, 429),
)
async def list_postings(
    res: ResourcesDep,
    tenant: TenantDep,
    wallet_id: WalletId,
    limit: Limit = 50,
    cursor: PostingCursor = None,
) -> Response:
    before = serialize.decode_number_cursor(cursor)
    async with res.pool.acquire() as conn:
        if await repo.get_wallet(conn, wallet_id, tenant) is None:
            raise NotFound(f"Wallet {wallet_id} not found")
        rows = await repo.list_postings(conn, wallet_id, before, limit + 1)
    return JSON(
        serialize.page(
            rows, limit, serialize.posting, lambda r: serialize.number_cursor("e", r["entry_no"])
        )
    )


@router.post(
    "/wallets/{wallet_id}/replenishments",
    status_code=202,
    response_model=Operation,
    summary="Top up a wallet (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def create_replenishment(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    wallet_id: WalletId,
    body: ReplenishmentCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    check_currency(body.currency)
    accepted = await intake.create_replenishment(
        res.lanes,
        tenant_id=tenant,
        idempotency_key=idempotency_key,
        wallet_id=wallet_id,
        amount=body.amount,
        currency=body.currency,
        reference=body.reference,
        request_id=req_id,
        admission=res.backlog.retry_after,
    )
    return single_operation_accepted(res, accepted, request_id=req_id, tenant=tenant)
