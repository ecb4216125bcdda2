"""Wallets: balance, statement, and replenishments (top-ups)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

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
from api.responses import Model
from api.routes.common import accept_one
from shared.accounts import repository as accounts
from shared.errors import NotFound
from shared.ledger import reads as ledger
from shared.operations.replenishment import Replenishment, ReplenishmentCreate
from shared.operations.withdrawal import Withdrawal, WithdrawalCreate
from shared.resources import serialize
from shared.resources.schemas import Operation, PostingPage, Wallet

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
        row = await accounts.get_wallet(conn, wallet_id, tenant)
    if row is None:
        raise NotFound(f"Wallet {wallet_id} not found")
    return Model(serialize.wallet(row))


@router.get(
    "/wallets/{wallet_id}/postings",
    response_model=PostingPage,
    summary="The wallet's statement: postings, newest first, with the balance after each",
    responses=problem_responses(404, 422, 429),
)
async def list_wallet_postings(
    res: ResourcesDep,
    tenant: TenantDep,
    wallet_id: WalletId,
    limit: Limit = 50,
    cursor: PostingCursor = None,
) -> Response:
    before = serialize.decode_number_cursor(cursor)
    async with res.pool.acquire() as conn:
        if await accounts.get_wallet(conn, wallet_id, tenant) is None:
            raise NotFound(f"Wallet {wallet_id} not found")
        rows = await ledger.list_postings(conn, wallet_id, before, limit + 1)
    return Model(
        serialize.page(
            PostingPage,
            rows,
            limit,
            serialize.posting,
            lambda r: serialize.number_cursor("e", r["entry_no"]),
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
    new = Replenishment.new(body, wallet_id)
    return await accept_one(
        res, new, tenant=tenant, idempotency_key=idempotency_key, request_id=req_id
    )


@router.post(
    "/wallets/{wallet_id}/withdrawals",
    status_code=202,
    response_model=Operation,
    summary="Take money out of a wallet, e.g. a payout (asynchronous: poll the operation)",
    responses=problem_responses(400, 404, 409, 413, 422, 429),
)
async def create_withdrawal(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    wallet_id: WalletId,
    body: WithdrawalCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    new = Withdrawal.new(body, wallet_id)
    return await accept_one(
        res, new, tenant=tenant, idempotency_key=idempotency_key, request_id=req_id
    )
