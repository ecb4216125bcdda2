"""Accounts: each has one USD wallet, created with it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from api.deps import (
    AccountCursor,
    IdempotencyKeyHeader,
    Limit,
    ResourcesDep,
    TenantDep,
    problem_responses,
)
from api.jsonbody import JsonRoute
from api.requests import AccountCreate
from api.responses import Model
from api.routes.common import accepted_response, check_currency
from api.webhooks_wake import wake_senders
from shared.accounts import repository as accounts
from shared.doorbell import events_key
from shared.errors import NotFound
from shared.intake.accounts import create_account as accept_account
from shared.resources import serialize
from shared.resources.schemas import Account, AccountPage

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["accounts"])

AccountId = Annotated[UUID, Path(description="Account id")]


@router.post(
    "/accounts",
    status_code=201,
    response_model=Account,
    summary="Create an account and its USD wallet",
    responses=problem_responses(400, 409, 413, 422, 429),
)
async def create_account(
    res: ResourcesDep,
    tenant: TenantDep,
    body: AccountCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    check_currency(body.currency)
    accepted = await accept_account(
        res.pool,
        tenant_id=tenant,
        idempotency_key=idempotency_key,
        name=body.name,
        currency=body.currency,
    )
    if not accepted.replayed:
        res.hub.announce([events_key(tenant)])
        # Its account.created event may be for a webhook endpoint: wake the senders (a
        # SET NX in the background; nothing more while they are awake).
        wake_senders(res.doorbell, res.settings)
    document = serialize.account(accepted.resource)
    return accepted_response(accepted, document, f"/v1/accounts/{accepted.resource['id']}")


@router.get(
    "/accounts",
    response_model=AccountPage,
    summary="List accounts, newest first",
    responses=problem_responses(422, 429),
)
async def list_accounts(
    res: ResourcesDep,
    tenant: TenantDep,
    limit: Limit = 50,
    cursor: AccountCursor = None,
) -> Response:
    before = serialize.decode_account_cursor(cursor)
    async with res.pool.acquire() as conn:
        rows = await accounts.list_accounts(conn, tenant, before, limit + 1)
    return Model(
        serialize.page(
            AccountPage,
            rows,
            limit,
            serialize.account,
            lambda r: serialize.account_cursor(r["id"]),
        )
    )


@router.get(
    "/accounts/{account_id}",
    response_model=Account,
    summary="Get an account",
    responses=problem_responses(404, 422, 429),
)
async def get_account(
    res: ResourcesDep,
    tenant: TenantDep,
    account_id: AccountId,
) -> Response:
    async with res.pool.acquire() as conn:
        row = await accounts.get_account(conn, account_id, tenant)
    if row is None:
        raise NotFound(f"Account {account_id} not found")
    return Model(serialize.account(row))
