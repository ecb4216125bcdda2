"""Webhooks: see docs/API.md, "Events and webhooks".

Endpoints are registered, listed, read, deleted (softly: afterwards they are as if they
never existed) and enabled again once disabled; each keeps a log of its delivery
attempts, and any of the tenant's events can be sent to it again by hand. The URL rule is
`shared.webhooks.urls`, the secret's storage `shared.webhooks.secrets`.
"""

from __future__ import annotations

import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from api.deps import Limit, ResourcesDep, TenantDep, problem_responses
from api.jsonbody import JsonRoute
from api.resources import Resources
from api.responses import Model
from api.webhooks_wake import wake_senders
from shared.asyncdb import Record
from shared.errors import FieldError, NotFound, ValidationFailed
from shared.ids import uuid7
from shared.resources import serialize
from shared.resources import webhooks as documents
from shared.webhooks import endpoints, urls
from shared.webhooks.requests import RedeliveryCreate, WebhookEndpointCreate
from shared.webhooks.secrets import new_secret, seal

log = logging.getLogger("paysys.api")

router = APIRouter(prefix="/v1", route_class=JsonRoute, tags=["webhooks"])

EndpointId = Annotated[UUID, Path(description="Webhook endpoint id")]
EndpointCursor = Annotated[
    str | None,
    Query(pattern=r"^w[0-9a-f]{32}$", description="`next_cursor` of the previous page"),
]
AttemptCursor = Annotated[
    str | None,
    Query(pattern=r"^d[1-9][0-9]{0,17}$", description="`next_cursor` of the previous page"),
]


async def _endpoint(res: Resources, endpoint_id: UUID, tenant: UUID) -> Record:
    async with res.pool.acquire() as conn:
        row = await endpoints.get_endpoint(conn, endpoint_id, tenant)
    if row is None:
        raise _not_found(endpoint_id)
    return row


def _not_found(endpoint_id: UUID) -> NotFound:
    return NotFound(f"Webhook endpoint {endpoint_id} not found")


REGISTRATION_PROBLEMS = problem_responses(413, 422, 429)
REGISTRATION_PROBLEMS[422] = {
    **REGISTRATION_PROBLEMS[422],
    "description": "Invalid request (`validation_error`: the body, or a tenant's 21st "
    "endpoint), or a URL that is not http(s) or points at a private or loopback address "
    "(`webhook_url_not_allowed`)",
}
REGISTRATION_PROBLEMS[503] = {
    **REGISTRATION_PROBLEMS[503],
    "description": "PostgreSQL or Redis unreachable, or the lookup of the URL's host name did "
    "not answer in time (`service_unavailable`, with Retry-After)",
}


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=documents.WebhookEndpointCreated,
    summary="Register a webhook endpoint (its signing secret is in this answer only)",
    responses=REGISTRATION_PROBLEMS,
)
async def create_webhook_endpoint(
    res: ResourcesDep, tenant: TenantDep, body: WebhookEndpointCreate
) -> Response:
    try:
        target = await urls.check(body.url, res.settings.webhook_allow_private)
    except urls.MalformedUrl as exc:
        raise ValidationFailed([FieldError(["body", "url"], f"The URL {exc}")]) from None
    secret = new_secret()
    endpoint_id = uuid7()
    async with res.pool.acquire() as conn, conn.transaction():
        row = await endpoints.create_endpoint(
            conn,
            endpoint_id=endpoint_id,
            tenant_id=tenant,
            url=target.url,
            event_types=body.event_types,
            description=body.description,
            sealed_secret=seal(secret, res.settings),
        )
    if row is None:
        raise ValidationFailed(
            [FieldError(["body"], "too many webhook endpoints")],
            f"A tenant has at most {endpoints.MAX_ENDPOINTS} webhook endpoints; delete one "
            "to register another",
        )
    log.info(
        "webhook endpoint registered",
        extra={"tenant_id": str(tenant), "endpoint_id": str(endpoint_id)},
    )
    return Model(
        documents.endpoint_created(row, secret),
        status_code=201,
        headers={"Location": f"/v1/webhook-endpoints/{endpoint_id}"},
    )


@router.get(
    "/webhook-endpoints",
    response_model=documents.WebhookEndpointPage,
    summary="List webhook endpoints, newest first",
    responses=problem_responses(422, 429),
)
async def list_webhook_endpoints(
    res: ResourcesDep, tenant: TenantDep, limit: Limit = 50, cursor: EndpointCursor = None
) -> Response:
    before = documents.decode_endpoint_cursor(cursor)
    async with res.pool.acquire() as conn:
        rows = await endpoints.list_endpoints(conn, tenant, before, limit + 1)
    return Model(
        serialize.page(
            documents.WebhookEndpointPage,
            rows,
            limit,
            documents.endpoint,
            lambda r: documents.endpoint_cursor(r["id"]),
        )
    )


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=documents.WebhookEndpoint,
    summary="Get a webhook endpoint (without its secret)",
    responses=problem_responses(404, 422, 429),
)
async def get_webhook_endpoint(
    res: ResourcesDep, tenant: TenantDep, endpoint_id: EndpointId
) -> Response:
    return Model(documents.endpoint(await _endpoint(res, endpoint_id, tenant)))


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint: nothing more is sent to it",
    responses=problem_responses(404, 422, 429),
)
async def delete_webhook_endpoint(
    res: ResourcesDep, tenant: TenantDep, endpoint_id: EndpointId
) -> Response:
    async with res.pool.acquire() as conn:
        deleted = await endpoints.delete_endpoint(conn, endpoint_id, tenant)
    if not deleted:
        raise _not_found(endpoint_id)
    log.info(
        "webhook endpoint deleted",
        extra={"tenant_id": str(tenant), "endpoint_id": str(endpoint_id)},
    )
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/enable",
    response_model=documents.WebhookEndpoint,
    summary="Enable a webhook endpoint again, after it was disabled for failing",
    responses=problem_responses(404, 422, 429),
)
async def enable_webhook_endpoint(
    res: ResourcesDep, tenant: TenantDep, endpoint_id: EndpointId
) -> Response:
    async with res.pool.acquire() as conn:
        row = await endpoints.enable_endpoint(conn, endpoint_id, tenant)
    if row is None:
        raise _not_found(endpoint_id)
    wake_senders(res.doorbell, res.settings)
    return Model(documents.endpoint(row))


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=documents.WebhookAttemptPage,
    summary="List a webhook endpoint's delivery attempts, newest first",
    responses=problem_responses(404, 422, 429),
)
async def list_webhook_deliveries(
    res: ResourcesDep,
    tenant: TenantDep,
    endpoint_id: EndpointId,
    limit: Limit = 50,
    cursor: AttemptCursor = None,
) -> Response:
    before = serialize.decode_number_cursor(cursor)
    async with res.pool.acquire() as conn:
        if await endpoints.get_endpoint(conn, endpoint_id, tenant) is None:
            raise _not_found(endpoint_id)
        rows = await endpoints.list_attempts(conn, endpoint_id, tenant, before, limit + 1)
    return Model(
        serialize.page(
            documents.WebhookAttemptPage,
            rows,
            limit,
            documents.attempt,
            lambda r: serialize.number_cursor("d", r["id"]),
        )
    )


@router.post(
    "/webhook-endpoints/{endpoint_id}/redeliveries",
    status_code=202,
    response_model=documents.WebhookDelivery,
    summary="Send one of the tenant's events to a webhook endpoint again (asynchronous: "
    "see its deliveries)",
    responses=problem_responses(404, 413, 422, 429),
)
async def redeliver_webhook_event(
    res: ResourcesDep, tenant: TenantDep, endpoint_id: EndpointId, body: RedeliveryCreate
) -> Response:
    async with res.pool.acquire() as conn:
        endpoint = await endpoints.get_endpoint(conn, endpoint_id, tenant)
        if endpoint is None:
            raise _not_found(endpoint_id)
        # Nothing is sent to a disabled endpoint: its deliveries wait until it is enabled.
        if endpoint["disabled_at"] is not None:
            raise ValidationFailed(
                [FieldError(["path", "endpoint_id"], "the endpoint is disabled")],
                f"Webhook endpoint {endpoint_id} is disabled; enable it "
                f"(POST /v1/webhook-endpoints/{endpoint_id}/enable) to send it events again",
            )
        row = await endpoints.redeliver(conn, endpoint_id, body.event_id, tenant)
    if row is None:  # (or the endpoint was deleted in between)
        raise NotFound(f"Event {body.event_id} not found")
    wake_senders(res.doorbell, res.settings)
    return Model(documents.delivery(row), status_code=202)
