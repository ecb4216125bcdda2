"""Request-scoped values for routes: the process's resources, the tenant, the request id,
and the parameters several routes share."""

from __future__ import annotations

from typing import Annotated, Any, cast
from uuid import UUID

from fastapi import Depends, Header, Query, Request

from api.resources import Resources

IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,255}$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="1-255 printable ASCII characters, unique per request, scoped to "
        "the tenant. Optional; an empty one is refused (400).",
    ),
]
# On money-moving requests: its absence is answered 400 idempotency_key_required (see
# api.errors), not the generic 422.
RequiredIdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="1-255 printable ASCII characters, unique per request, scoped to the tenant.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size (1-200)")]
# Each listing's cursor has a shape of its own, stated in the schema: `next_cursor` of
# the previous page. (Anything of that shape is a valid place to start from.)
AccountCursor = Annotated[
    str | None,
    Query(pattern=r"^a[0-9a-f]{32}$", description="`next_cursor` of the previous page"),
]
PostingCursor = Annotated[
    str | None,
    Query(pattern=r"^e[1-9][0-9]{0,17}$", description="`next_cursor` of the previous page"),
]
BatchItemCursor = Annotated[
    str | None,
    Query(pattern=r"^i[1-9][0-9]{0,17}$", description="`next_cursor` of the previous page"),
]
Wait = Annotated[
    float | None,
    Query(
        ge=0,
        le=30,
        allow_inf_nan=False,
        description="Long poll: answer as soon as the resource is final, or after this "
        "many seconds (0-30)",
    ),
]


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in a thread pool,
# a thread hand-off per request for what is a dictionary lookup.
async def resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


async def tenant_id(request: Request) -> UUID:
    return cast(UUID, request.state.tenant_id)


async def request_id(request: Request) -> str | None:
    return cast(str | None, getattr(request.state, "request_id", None))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json answers a route can give."""
    descriptions = {
        400: "Idempotency-Key missing or empty (`idempotency_key_required`)",
        401: "Missing or invalid API key (`unauthorized`)",
        404: "No such resource for this tenant (`not_found`)",
        409: "The same Idempotency-Key is still in flight (`idempotency_key_in_use`)",
        413: "Body over the configured limit (`payload_too_large`)",
        422: "Invalid request (`validation_error`, `unsupported_currency`, `same_wallet`, "
        "`idempotency_key_reused`)",
        429: "Over the tenant's rate (`rate_limited`)",
        503: "PostgreSQL or Redis unreachable (`service_unavailable`)",
    }
    return {
        status: {
            "description": descriptions[status],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in (401, *statuses, 503)
    }


ResourcesDep = Annotated[Resources, Depends(resources)]
TenantDep = Annotated[UUID, Depends(tenant_id)]
RequestIdDep = Annotated[str | None, Depends(request_id)]
