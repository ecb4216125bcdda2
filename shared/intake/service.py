"""Accepting requests: accounts and money-moving operations, with idempotency.

Idempotency (per tenant, keys of 1-255 printable ASCII characters):

* The first request with a key inserts the idempotency record together with what it
  creates, in one statement. A request refused before that (any 4xx) leaves no record, so
  the key stays free for a corrected request.
* The same key and the same request (method, path and normalised body: "10.5" and
  "10.50" are the same amount) replays: the original status code and the resource as it is
  now, marked `replayed`. The same key with another request is refused.
* A concurrent duplicate waits for the first request's commit on the key's primary key,
  then replays; if it waits longer than the lock timeout it is told the key is in use
  (409). A wait on a busy wallet's queue that times out is a 503: retry, same key.

Admission: while the backlog of accepted work is over its bound (see `Admission`), a
request that would create operations is refused with 503 `overloaded`, unless its key
replays an accepted one: a client retrying what was accepted still gets its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson

from shared.errors import (
    FieldError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    Overloaded,
    PaysysError,
    SameWallet,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.ids import uuid7
from shared.intake import repository as repo
from shared.intake.repository import Record

Pool = asyncpg.Pool
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Accepted:
    """A created (or replayed) resource and the status code of its creation."""

    resource: Record
    status_code: int
    replayed: bool


# Whether new operations may be accepted now: None if so, else the seconds after which to
# retry. The API answers it from a value refreshed in the background, never with a query.
Admission = Callable[[], int | None]


async def _admit(
    pool: Pool,
    admission: Admission | None,
    tenant_id: uuid.UUID,
    key: str,
    digest: bytes,
) -> Accepted | None:
    """None if the request may go on; a replay if it repeats an accepted one while the
    backlog is over its bound; else `Overloaded`."""
    retry_after = admission() if admission is not None else None
    if retry_after is None:
        return None
    async with pool.acquire() as conn:
        replay = await _replay(conn, tenant_id, key, digest)
    if replay is not None:
        return replay
    raise Overloaded(
        "paysys is applying accepted operations more slowly than they arrive; "
        "retry after the time in Retry-After",
        retry_after=retry_after,
    )


def request_hash(method: str, path: str, body: dict[str, Any]) -> bytes:
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


async def _replay(
    conn: repo.Connection,
    tenant_id: uuid.UUID,
    key: str,
    digest: bytes,
) -> Accepted | None:
    record = await repo.idempotency_record(conn, tenant_id, key)
    if record is None:
        return None
    if record["request_hash"] != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key"
        )
    fetch: dict[str, Callable[[], Awaitable[Record | None]]] = {
        "account": lambda: repo.get_account(conn, record["resource_id"], tenant_id),
        "operation": lambda: repo.get_operation(conn, record["resource_id"], tenant_id),
        "replenishment_batch": lambda: repo.get_batch(conn, record["resource_id"], tenant_id),
    }
    resource = await fetch[record["resource_type"]]()
    assert resource is not None, "an idempotency record always names an existing resource"
    return Accepted(resource, record["status_code"], replayed=True)


async def _accept(
    conn: repo.Connection,
    *,
    tenant_id: uuid.UUID,
    key: str | None,
    digest: bytes,
    status_code: int,
    insert: Callable[[], Awaitable[Record | None]],
    why_not: Callable[[], Awaitable[PaysysError | None]],
) -> Accepted:
    """Run an intake statement; if it inserted nothing, replay the key's resource.

    `insert` returns the new row, or None when the key is taken or a named wallet is
    missing; `why_not` tells the latter. A key that expires between the two (retention
    runs concurrently) is simply free again: insert once more.
    """
    for _ in range(2):
        try:
            row = await insert()
        except asyncpg.LockNotAvailableError as exc:
            raise await _lock_timeout(conn, tenant_id, key) from exc
        if row is not None:
            return Accepted(row, status_code, replayed=False)
        if key is not None:
            replay = await _replay(conn, tenant_id, key, digest)
            if replay is not None:
                return replay
        error = await why_not()
        if error is not None:
            raise error
    raise ServiceUnavailable("The request could not be recorded; retry with the same key")


async def _no_other_reason() -> PaysysError | None:
    """For intakes whose statement inserts nothing only when the key is taken."""
    return None


async def _lock_timeout(
    conn: repo.Connection, tenant_id: uuid.UUID, key: str | None
) -> PaysysError:
    """A statement waited too long for a lock: on its key (a duplicate still in flight:
    409), or on its wallet's queue (busy: 503, retry)."""
    if key is not None and await repo.key_in_flight(conn, tenant_id, key):
        return IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still being processed; retry shortly"
        )
    return ServiceUnavailable("The wallet is busy; retry shortly with the same Idempotency-Key")


Work = Callable[[repo.Connection], Awaitable[Accepted]]
LaneKey = tuple[uuid.UUID, uuid.UUID]  # (tenant, wallet)


@dataclass(slots=True)
class _Waiting:
    work: Work
    answer: asyncio.Future[Accepted]


class WalletLanes:
    """The intake of operations queued on one wallet, grouped while the wallet is busy.

    Each operation takes the next position in its wallet's queue under the queue row's
    lock, held until its commit is flushed, so that positions follow commit order. One at a
    time, a hot wallet's intake would be bound by the commit flush. So, in this process,
    while an intake for a wallet is in flight, the next ones for that wallet wait for it,
    then go together in one transaction: one flush for all of them, their positions in
    the order they arrived, and their answers after the commit. If the group's
    transaction fails (a lock timeout, a deadlock on idempotency keys, a lost
    connection), it has been rolled back: each one is then run on its own.
    """

    def __init__(self, pool: Pool, max_group: int = 64):
        self.pool = pool
        self.max_group = max_group
        # Lanes are the tenant's and the wallet's: another tenant's requests naming the
        # same wallet id (refused, as they must be) never join or delay its group.
        self._waiting: dict[LaneKey, list[_Waiting]] = {}
        self._serving: set[asyncio.Task[None]] = set()

    async def run(self, tenant_id: uuid.UUID, wallet_id: uuid.UUID, work: Work) -> Accepted:
        lane = (tenant_id, wallet_id)
        waiting = self._waiting.get(lane)
        if waiting is not None:  # the wallet is busy: wait to go with the next group
            answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
            waiting.append(_Waiting(work, answer))
            return await answer
        self._waiting[lane] = []
        try:
            return await self._alone(work)
        finally:
            if self._waiting[lane]:
                task = asyncio.create_task(self._serve(lane))
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)
            else:
                del self._waiting[lane]

    async def _alone(self, work: Work) -> Accepted:
        async with self.pool.acquire() as conn:
            return await work(conn)

    async def _serve(self, lane: LaneKey) -> None:
        waiting = self._waiting[lane]
        try:
            while waiting:
                group = [w for w in waiting[: self.max_group] if not w.answer.done()]
                del waiting[: self.max_group]
                await self._group(group)
        finally:
            del self._waiting[lane]
            for left in waiting:  # only if this task was cancelled
                left.answer.cancel()

    async def _group(self, group: list[_Waiting]) -> None:
        outcomes: list[Accepted | PaysysError] = []
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for waiting in group:
                    try:
                        outcomes.append(await waiting.work(conn))
                    except PaysysError as exc:  # this request's answer, not the group's
                        outcomes.append(exc)
                # A statement error that was handled on the way would have aborted the
                # transaction, and COMMIT would then roll back without a word: ask.
                await conn.execute("SELECT 1")
        except Exception as exc:  # rolled back: each on its own, in the same order
            log.info("intake group of %d ran one by one: %r", len(group), exc)
            for index, waiting in enumerate(group):
                if not waiting.answer.done():
                    # A request the group had recorded afresh may find its key taken now:
                    # the COMMIT that failed (a lost connection) may have happened after
                    # all. It is still that request's first answer, not a replay, and its
                    # operation still needs a worker woken.
                    outcome = outcomes[index] if index < len(outcomes) else None
                    fresh = isinstance(outcome, Accepted) and not outcome.replayed
                    await self._settle(waiting, self._alone(waiting.work), fresh=fresh)
            return
        for waiting, outcome in zip(group, outcomes, strict=True):
            if waiting.answer.done():
                continue
            if isinstance(outcome, PaysysError):
                waiting.answer.set_exception(outcome)
            else:
                waiting.answer.set_result(outcome)

    @staticmethod
    async def _settle(waiting: _Waiting, attempt: Awaitable[Accepted], *, fresh: bool) -> None:
        try:
            result = await attempt
        except Exception as exc:
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
            return
        if fresh and result.replayed:
            result = Accepted(result.resource, result.status_code, replayed=False)
        if not waiting.answer.done():
            waiting.answer.set_result(result)


async def create_account(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str | None,
    name: str,
    currency: str,
) -> Accepted:
    digest = request_hash("POST", "/v1/accounts", {"name": name, "currency": currency})
    async with pool.acquire() as conn:
        return await _accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=201,
            insert=lambda: repo.create_account(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                account_id=uuid7(),
                name=name,
                wallet_id=uuid7(),
                currency=currency,
            ),
            why_not=_no_other_reason,
        )


async def create_replenishment(
    lanes: WalletLanes,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
    admission: Admission | None = None,
) -> Accepted:
    digest = request_hash(
        "POST",
        f"/v1/wallets/{wallet_id}/replenishments",
        {"amount": amount, "currency": currency, "reference": reference},
    )
    refused = await _admit(lanes.pool, admission, tenant_id, idempotency_key, digest)
    if refused is not None:
        return refused

    async def work(conn: repo.Connection) -> Accepted:
        async def why_not() -> PaysysError | None:
            if await repo.get_wallet(conn, wallet_id, tenant_id) is None:
                return NotFound(f"Wallet {wallet_id} not found")
            return None

        return await _accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=202,
            insert=lambda: repo.create_replenishment(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                operation_id=uuid7(),
                wallet_id=wallet_id,
                amount=amount,
                currency=currency,
                reference=reference,
                request_id=request_id,
            ),
            why_not=why_not,
        )

    return await lanes.run(tenant_id, wallet_id, work)


async def create_transfer(
    lanes: WalletLanes,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    from_wallet_id: uuid.UUID,
    to_wallet_id: uuid.UUID,
    amount: int,
    currency: str,
    reference: str | None,
    request_id: str | None,
    admission: Admission | None = None,
) -> Accepted:
    digest = request_hash(
        "POST",
        "/v1/transfers",
        {
            "from_wallet_id": str(from_wallet_id),
            "to_wallet_id": str(to_wallet_id),
            "amount": amount,
            "currency": currency,
            "reference": reference,
        },
    )
    refused = await _admit(lanes.pool, admission, tenant_id, idempotency_key, digest)
    if refused is not None:
        return refused
    if from_wallet_id == to_wallet_id:
        async with lanes.pool.acquire() as conn:
            # A wallet that does not exist is a 404 first, as for any other transfer.
            if await repo.get_wallet(conn, from_wallet_id, tenant_id) is None:
                raise NotFound(f"Wallet {from_wallet_id} not found")
        raise SameWallet("from_wallet_id and to_wallet_id must be different wallets")

    async def work(conn: repo.Connection) -> Accepted:
        async def why_not() -> PaysysError | None:
            for field, wallet_id in (
                ("from_wallet_id", from_wallet_id),
                ("to_wallet_id", to_wallet_id),
            ):
                if await repo.get_wallet(conn, wallet_id, tenant_id) is None:
                    return NotFound(f"Wallet {wallet_id} ({field}) not found")
            return None

        return await _accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=202,
            insert=lambda: repo.create_transfer(
                conn,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                operation_id=uuid7(),
                from_wallet_id=from_wallet_id,
                to_wallet_id=to_wallet_id,
                amount=amount,
                currency=currency,
                reference=reference,
                request_id=request_id,
            ),
            why_not=why_not,
        )

    return await lanes.run(tenant_id, from_wallet_id, work)


@dataclass(slots=True, frozen=True)
class BatchItem:
    wallet_id: uuid.UUID
    amount: int
    currency: str
    reference: str | None


def _batch_hash(items: list[BatchItem]) -> bytes:
    return request_hash(
        "POST",
        "/v1/replenishment-batches",
        {"items": [[str(i.wallet_id), i.amount, i.currency, i.reference] for i in items]},
    )


async def check_batch_wallets(
    conn: repo.Connection, tenant_id: uuid.UUID, items: list[BatchItem]
) -> None:
    """Every item's wallet must be the tenant's; one query, whatever the batch size."""
    wanted = list({item.wallet_id for item in items})
    known = await repo.tenant_wallet_ids(conn, wanted, tenant_id)
    missing = [
        FieldError(["body", "items", index, "wallet_id"], f"Wallet {item.wallet_id} not found")
        for index, item in enumerate(items)
        if item.wallet_id not in known
    ]
    if missing:
        raise ValidationFailed(
            missing, f"{len(missing)} item(s) name wallets that do not exist; nothing was accepted"
        )


async def validate_batch(pool: Pool, *, tenant_id: uuid.UUID, items: list[BatchItem]) -> None:
    async with pool.acquire() as conn:
        await check_batch_wallets(conn, tenant_id, items)


async def create_batch(
    pool: Pool,
    *,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    items: list[BatchItem],
    request_id: str | None,
    admission: Admission | None = None,
) -> Accepted:
    """A batch and one replenishment per item, each at the next position of its wallet's
    queue, in one transaction; or nothing at all."""
    digest = _batch_hash(items)
    refused = await _admit(pool, admission, tenant_id, idempotency_key, digest)
    if refused is not None:
        return refused
    async with pool.acquire() as conn:

        async def insert() -> Record | None:
            batch_id = uuid7()
            async with conn.transaction():
                if not await repo.insert_idempotency_key(
                    conn,
                    tenant_id=tenant_id,
                    key=idempotency_key,
                    request_hash=digest,
                    resource_type="replenishment_batch",
                    resource_id=batch_id,
                    status_code=202,
                ):
                    return None  # taken: nothing else was written
                await check_batch_wallets(conn, tenant_id, items)
                await repo.insert_batch(conn, batch_id, tenant_id, len(items))
                counts = Counter(item.wallet_id for item in items)
                next_position = await repo.reserve_positions(conn, counts)
                rows = []
                for item in items:
                    next_position[item.wallet_id] += 1
                    rows.append(
                        (
                            uuid7(),
                            tenant_id,
                            "replenishment",
                            item.amount,
                            item.currency,
                            item.wallet_id,
                            item.reference,
                            batch_id,
                            next_position[item.wallet_id],
                            request_id,
                        )
                    )
                await repo.copy_batch_operations(conn, rows)
            return await repo.get_batch(conn, batch_id, tenant_id)

        return await _accept(
            conn,
            tenant_id=tenant_id,
            key=idempotency_key,
            digest=digest,
            status_code=202,
            insert=insert,
            why_not=_no_other_reason,  # bad wallets were already refused inside the insert
        )
