"""Replenishment batches: up to 10,000 top-ups accepted (or refused) as one."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

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
from api.errors import field_errors
from api.jsonbody import JsonRoute
from api.requests import BatchCreate, BatchItemCreate
from api.resources import Resources
from api.responses import Model
from api.routes.common import accepted_response, long_poll, operation_accepted
from shared.accounts import repository as accounts
from shared.asyncdb import Record
from shared.errors import FieldError, NotFound, UnsupportedCurrency, ValidationFailed
from shared.fields import Currency
from shared.intake import batches
from shared.intake.batches import BatchItem
from shared.money import CURRENCY, SUPPORTED_CURRENCIES
from shared.operations import repository as operations
from shared.operations.replenishment import Replenishment
from shared.resources import serialize
from shared.resources.schemas import Batch, BatchValidation, OperationPage

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["replenishment batches"])

BatchId = Annotated[UUID, Path(description="Batch id")]


_ITEMS: TypeAdapter[list[BatchItemCreate]] = TypeAdapter(list[BatchItemCreate])
_ITEM: TypeAdapter[BatchItemCreate] = TypeAdapter(BatchItemCreate)
_WALLET_ID: TypeAdapter[UUID] = TypeAdapter(UUID)
_CURRENCY: TypeAdapter[str] = TypeAdapter(Currency)
_UNSUPPORTED = 'Only "USD" is supported'


def _batch_item(item: BatchItemCreate) -> BatchItem:
    return BatchItem(item.wallet_id, item.amount, item.currency, item.reference)


def _salvage(value: object) -> tuple[UUID | None, str | None]:
    """The wallet id and currency of a malformed item, where they are well formed."""
    if not isinstance(value, dict):
        return None, None
    wallet: UUID | None = None
    currency: str | None = None
    with contextlib.suppress(ValidationError):
        wallet = _WALLET_ID.validate_python(value.get("wallet_id"))
    with contextlib.suppress(ValidationError):
        currency = _CURRENCY.validate_python(value.get("currency", CURRENCY))
    return wallet, currency


async def _items(res: Resources, tenant: UUID, raw: list[Any]) -> list[BatchItem]:
    """The batch's items, or a 422 naming every bad item in one answer: malformed ones,
    ones in another currency and ones naming a wallet the tenant does not have.

    When the only faults are currencies the code is `unsupported_currency`, as for a
    single operation; with any other fault it is `validation_error`, the currencies
    named among the rest. When every item is well formed, the wallets are checked by the
    intake itself, in the transaction that accepts the batch.
    """
    try:
        parsed = _ITEMS.validate_python(raw)
    except ValidationError:
        pass
    else:
        if all(item.currency in SUPPORTED_CURRENCIES for item in parsed):
            return [_batch_item(item) for item in parsed]

    errors: list[tuple[int, FieldError]] = []
    currencies = 0
    wallets: dict[int, UUID] = {}
    for index, value in enumerate(raw):
        here: list[str | int] = ["body", "items", index]
        wallet: UUID | None
        currency: str | None
        try:
            item = _ITEM.validate_python(value)
        except ValidationError as exc:
            located = [{**e, "loc": (*here, *e["loc"])} for e in exc.errors(include_url=False)]
            errors += [(index, error) for error in field_errors(located)]
            wallet, currency = _salvage(value)
        else:
            wallet, currency = item.wallet_id, item.currency
        if currency is not None and currency not in SUPPORTED_CURRENCIES:
            errors.append((index, FieldError([*here, "currency"], _UNSUPPORTED)))
            currencies += 1
        if wallet is not None:
            wallets[index] = wallet
    if wallets:
        async with res.pool.acquire() as conn:
            known = await accounts.tenant_wallet_ids(conn, list(set(wallets.values())), tenant)
        errors += [
            (index, FieldError(["body", "items", index, "wallet_id"], f"Wallet {wallet} not found"))
            for index, wallet in wallets.items()
            if wallet not in known
        ]
    errors.sort(key=lambda error: error[0])  # stable: an item's own faults stay in order
    bad = len({index for index, _ in errors})
    listed = [error for _, error in errors]
    if currencies == len(errors):
        raise UnsupportedCurrency(
            f"{bad} item(s) have a currency other than USD; nothing was accepted", listed
        )
    raise ValidationFailed(listed, f"{bad} item(s) are not valid; nothing was accepted")


@router.post(
    "/replenishment-batches",
    status_code=202,
    response_model=Batch,
    summary="Top up many wallets at once (1-10,000 items, all or nothing)",
    responses=problem_responses(400, 409, 413, 422, 429),
)
async def create_replenishment_batch(
    res: ResourcesDep,
    tenant: TenantDep,
    req_id: RequestIdDep,
    body: BatchCreate,
    idempotency_key: RequiredIdempotencyKey,
) -> Response:
    items = await _items(res, tenant, body.items)
    accepted = await batches.create_batch(
        res.pool,
        tenant_id=tenant,
        idempotency_key=idempotency_key,
        items=items,
        request_id=req_id,
        admission=res.backlog.retry_after,
    )
    operation_accepted(
        res,
        accepted,
        kind=Replenishment.name,
        operations=len(items),
        request_id=req_id,
        tenant=tenant,
        batch=True,
    )
    return accepted_response(
        accepted,
        serialize.batch(accepted.resource),
        f"/v1/replenishment-batches/{accepted.resource['id']}",
    )


@router.post(
    "/replenishment-batch-validations",
    response_model=BatchValidation,
    summary="Check a batch (wallets included) without accepting it",
    description="200 when the same body would be accepted by POST /v1/replenishment-batches, "
    "422 naming every bad item otherwise. Nothing is created.",
    responses=problem_responses(413, 422, 429),
)
async def validate_replenishment_batch(
    res: ResourcesDep, tenant: TenantDep, body: BatchCreate
) -> Response:
    items = await _items(res, tenant, body.items)
    await batches.validate_batch(res.pool, tenant_id=tenant, items=items)
    return Model(BatchValidation.model_construct(valid=True, total=len(items)))


@router.get(
    "/replenishment-batches/{batch_id}",
    response_model=Batch,
    summary="Get a batch and its counts; with ?wait=S, wait up to S seconds for completion",
    responses=problem_responses(404, 422, 429),
)
async def get_replenishment_batch(
    res: ResourcesDep, tenant: TenantDep, batch_id: BatchId, wait: Wait = None
) -> Response:
    async def fetch() -> Record | None:
        async with res.pool.acquire() as conn:
            return await operations.get_batch(conn, batch_id, tenant)

    async def still_pending() -> bool:
        async with res.pool.acquire() as conn:
            return await operations.batch_has_pending(conn, batch_id)

    row = await long_poll(
        res.hub, tenant, f"b:{batch_id}", wait, fetch, lambda r: r["pending"] == 0, still_pending
    )
    if row is None:
        raise NotFound(f"Batch {batch_id} not found")
    return Model(serialize.batch(row))


@router.get(
    "/replenishment-batches/{batch_id}/operations",
    response_model=OperationPage,
    summary="The batch's replenishments, in the batch's order",
    responses=problem_responses(404, 422, 429),
)
async def list_replenishment_batch_operations(
    res: ResourcesDep,
    tenant: TenantDep,
    batch_id: BatchId,
    limit: Limit = 50,
    cursor: BatchItemCursor = None,
) -> Response:
    after = serialize.decode_number_cursor(cursor)
    async with res.pool.acquire() as conn:
        if not await operations.batch_exists(conn, batch_id, tenant):
            raise NotFound(f"Batch {batch_id} not found")
        rows = await operations.list_batch_operations(conn, batch_id, tenant, after, limit + 1)
    return Model(
        serialize.page(
            OperationPage,
            rows,
            limit,
            serialize.operation,
            lambda r: serialize.number_cursor("i", r["batch_offset"]),
        )
    )
