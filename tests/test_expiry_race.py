"""A capture recorded in an intake transaction that began before its hold's expiry, while
the sweeper enqueues the release in between.

API.md: a capture "fails with `hold_expired` when accepted at or after `expires_at`
(whatever the hold's status then), else with `hold_not_active` when the hold is not
`held` at application", and "a capture or void accepted before `expires_at` is applied
before the release". The intake records an operation's `created_at` as `now()`, the start
of its transaction, but takes its queue position later, when its statement gets the queue
row's lock: after a wait on a concurrent request's idempotency key, or, in a grouped
intake (`shared.intake.lanes`, one transaction for the requests of a busy wallet), after
the group's earlier requests that took no position (replays, refusals). If the sweeper
enqueues the hold's expiry in between, the capture is recorded as accepted before
`expires_at` yet queued after the release, and fails `hold_not_active`.

Shown here with the real statements (`CREATE_OPERATION` through asyncpg, the sweeper's
`ENQUEUE_EXPIRIES`, the drain) on a scratch database, a wait in the intake's transaction
standing for those.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from shared.ids import uuid7
from shared.operations import repository as operations
from shared.operations.capture import Capture, CaptureCreate
from shared.operations.hold import Hold, HoldCreate
from shared.operations.replenishment import Replenishment, ReplenishmentCreate
from tests.scratch_ledger import Conn, Tenant, drain_all, scratch_database, sweep

HOLD_SECONDS = 2


@pytest.fixture
def scratch() -> Iterator[tuple[str, Conn]]:
    yield from scratch_database()


async def _capture_in_a_transaction_begun_before_the_expiry(
    url: str, conn: Conn, tenant: Tenant, hold_id: uuid.UUID, expires_in: float
) -> uuid.UUID:
    with conn, conn.cursor() as cur:
        new = Capture.new(CaptureCreate(), tenant.hold_row(cur, hold_id))
    intake = await asyncpg.connect(url)
    try:
        async with intake.transaction():
            await intake.execute("SELECT 1")  # the group's first request, before expires_at
            await asyncio.sleep(expires_in)
            # Meanwhile the sweeper finds the hold past its expiry, and enqueues its release.
            deadline = time.monotonic() + 5
            while sweep(conn) == 0:
                assert time.monotonic() < deadline, "the sweeper never enqueued the release"
                await asyncio.sleep(0.1)
            row = await operations.create_operation(
                intake,
                new,
                tenant_id=tenant.id,
                idempotency_key="capture",
                request_hash=b"capture",
                operation_id=uuid7(),
                request_id=None,
            )
        assert row["id"] is not None
        return uuid.UUID(str(row["id"]))
    finally:
        await intake.close()


def test_a_capture_accepted_before_expiry_is_applied_before_the_release(
    scratch: tuple[str, Conn],
) -> None:
    url, conn = scratch
    tenant = Tenant(conn)
    source = tenant.wallets[0]
    with conn, conn.cursor() as cur:
        replenishment = ReplenishmentCreate.model_validate({"amount": "10.00"})
        tenant.record(cur, Replenishment.new(replenishment, source))
        hold = HoldCreate.model_validate(
            {"from_wallet_id": str(source), "amount": "4.00", "expires_in": HOLD_SECONDS}
        )
        hold_id = tenant.record(cur, Hold.new(hold))
    drain_all(conn, max_ops=100)
    started = time.monotonic()

    capture_id = asyncio.run(
        _capture_in_a_transaction_begun_before_the_expiry(
            url, conn, tenant, hold_id, HOLD_SECONDS - (time.monotonic() - started)
        )
    )
    drain_all(conn, max_ops=100)

    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT c.status, c.error_code, c.created_at < h.expires_at, h.status "
            "FROM operation c JOIN hold h ON h.id = c.hold_id WHERE c.id = %s",
            (capture_id,),
        )
        status, error, before_expiry, hold_status = cur.fetchone()  # type: ignore[misc]
    if before_expiry:  # accepted before expires_at: applied before the release
        assert (status, hold_status) == ("succeeded", "captured"), (error, hold_status)
    else:
        assert (status, error) == ("failed", "hold_expired")
