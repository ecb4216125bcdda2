"""Lanes: the intake of operations queued on one wallet, grouped while the wallet is busy.

Each operation takes the next position in its wallet's queue under the queue row's lock,
held until its commit is flushed, so that positions follow commit order. One at a time, a
hot wallet's intake would be bound by the commit flush. So, in this process, while an
intake for a wallet is in flight, the next ones for that wallet wait for it, then go
together in one transaction: one flush for all of them, their positions in the order they
arrived, and their answers after the commit.

The rule this keeps: a request's answer is the one it would get alone. A refusal in a
group is that request's answer only; if the group's transaction fails, it has been rolled
back and each request is run on its own; a request the group had recorded afresh is
answered as new even if, run again, it finds its key taken (the COMMIT that failed on the
client's side may have happened).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.asyncdb import Connection, Pool
from shared.errors import PaysysError
from shared.intake.idempotency import Accepted

log = logging.getLogger("shared.intake.lanes")


Work = Callable[[Connection], Awaitable[Accepted]]
LaneKey = tuple[uuid.UUID, uuid.UUID]  # (tenant, wallet)


@dataclass(slots=True)
class _Waiting:
    work: Work
    answer: asyncio.Future[Accepted]


class WalletLanes:
    """The lanes of this process, one per (tenant, wallet) with an intake in flight."""

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
            # A transaction opened here, not by the request: it is the group's, shared by
            # the requests of several callers, and only this class knows who is in it.
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
