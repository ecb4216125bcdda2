"""Admission: new operations are refused while the backlog is over its bound.

While the oldest pending operation is older than `PAYSYS_MAX_BACKLOG_SECONDS`, a request
that would create operations is answered 503 `overloaded` with Retry-After, unless its key
replays an accepted request: a client retrying what was accepted still gets its answer.
Whether the backlog is over its bound is the caller's to say (`Admission`); the API answers
it from a value refreshed in the background, never with a query per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from shared.asyncdb import Pool
from shared.errors import Overloaded
from shared.intake.idempotency import Accepted, replay

# None if new operations are admitted now; else the seconds after which to retry.
Admission = Callable[[], int | None]


async def admit(
    pool: Pool, admission: Admission | None, tenant_id: uuid.UUID, key: str, digest: bytes
) -> Accepted | None:
    """None if the request may go on; its replay if it repeats an accepted one while the
    backlog is over its bound; else `Overloaded`."""
    retry_after = admission() if admission is not None else None
    if retry_after is None:
        return None
    async with pool.acquire() as conn:
        replayed = await replay(conn, tenant_id, key, digest)
    if replayed is not None:
        return replayed
    raise Overloaded(
        "paysys is applying accepted operations more slowly than they arrive; "
        "retry after the time in Retry-After",
        retry_after=retry_after,
    )
