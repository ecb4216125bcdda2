"""Applying operations: the only code that changes a balance.

The rules, and how each is kept:

1. Exactly once. An operation is applied in the same database transaction that marks it
   succeeded or failed, and only while it is still pending (`complete_operations` checks
   `status = 'pending'` and the count must match). A redelivered or duplicate wake-up finds
   nothing pending and does nothing; a crash before COMMIT leaves everything pending.
2. Atomic. All of an operation's postings are written in its drain's transaction, or none.
3. No negative balance, and none over the limit. A transfer whose source cannot cover it
   fails with `insufficient_funds` and moves nothing; a credit that would take a user
   wallet above `MAX_BALANCE` fails with `balance_limit_exceeded`. The schema refuses
   both too.
4. Double entry. Each ledger transaction has two postings summing to zero; replenishments
   are balanced against a funding wallet (the schema checks it per statement).
5. Serial per wallet, in acceptance order. A drain first claims wallets' queues (an
   advisory lock per wallet, see `repository.CLAIM_WALLETS`) and then applies each claimed
   wallet's pending operations in `position` order: the order in which the intake
   committed them, under a per-wallet row lock (see `shared.intake.repository`). While a
   wallet's queue is claimed nobody else applies its operations; credits from other
   wallets' transfers only take its balance row lock, in the order their own source
   wallets are drained.

One drain applies many operations, of many wallets, in one transaction: that is what makes
a hot wallet or a bulk batch cheap (one lock, one commit, a few bulk statements).

6. One bad operation stalls nobody. If the database refuses a drain's writes (a
   constraint, a trigger, a value out of range) or the code fails on one operation, the
   writes are rolled back to a savepoint taken after the claims and locks, and the
   operation at fault is found by trying ever shorter prefixes of the drain (each in a
   savepoint of its own, rolled back). It ends `failed` with `internal_error`, its cause
   logged; everything else of the drain, its own wallet's later operations included, is
   applied as usual. A lost connection or a lock conflict is not such a fault: the drain
   rolls back whole and is retried.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared import metrics
from shared.db import Cursor, transaction
from shared.events import outbox
from shared.ledger import named
from shared.ledger import repository as repo
from shared.ledger.locked import TRANSIENT_ERRORS, Locked
from shared.operations import KINDS
from shared.operations.kind import PendingOperation

log = logging.getLogger("paysys.ledger")

SMALL_DRAIN = 32
PAUSE_AFTER_SMALL_DRAIN = 0.005


@dataclass(slots=True)
class DrainResult:
    """What one drain transaction did."""

    claimed_wallets: int = 0
    # Each operation applied, in order: the operation, its status and its error code.
    outcomes: list[tuple[PendingOperation, str, str | None]] = field(default_factory=list)
    batch_ids: set[uuid.UUID] = field(default_factory=set)
    # Operations that failed with internal_error, and why (for the log only).
    faulty: dict[uuid.UUID, Exception] = field(default_factory=dict)
    # Tenants with new events, to wake their feed's long polls.
    event_tenants: set[uuid.UUID] = field(default_factory=set)

    @property
    def applied(self) -> int:
        return len(self.outcomes)

    @property
    def succeeded(self) -> int:
        return sum(1 for _, status, _ in self.outcomes if status == "succeeded")


def interleave(operations: list[PendingOperation]) -> list[PendingOperation]:
    """One application order for a drain: each wallet's operations stay in their queue
    order, and the queues are merged by arrival (`seq`), so that a credit accepted before a
    debit of the same wallet is usually applied before it too."""
    keyed = []
    last_key: dict[uuid.UUID, int] = {}
    for op in operations:  # each wallet's operations arrive in position order
        key = max(op.seq, last_key.get(op.queue_wallet_id, op.seq))
        last_key[op.queue_wallet_id] = key
        keyed.append((key, op))
    keyed.sort(key=lambda pair: pair[0])  # stable: ties keep queue order
    return [op for _, op in keyed]


def drain_once(cur: Cursor, max_ops: int) -> DrainResult:
    """Claim wallets with pending work and apply up to `max_ops` of their operations.

    Runs inside the caller's transaction; nothing is visible until the caller commits.
    """
    result = DrainResult()
    claimed = repo.claim_wallets(cur, budget=max_ops)
    result.claimed_wallets = len(claimed)
    if not claimed:
        return result
    operations = interleave(repo.pending_operations(cur, claimed))
    if not operations:
        return result

    funding = None
    if any(KINDS[op.type].uses_funding for op in operations):
        funding = repo.lock_funding_wallet(cur)
    wallet_ids: set[uuid.UUID] = set()
    for op in operations:
        wallet_ids.update(KINDS[op.type].wallets(op))
    wallets = repo.lock_wallets(cur, list(wallet_ids))
    if len(wallets) != len(wallet_ids):
        raise RuntimeError(
            f"operations name wallets that are not user wallets: "
            f"{sorted(map(str, wallet_ids - wallets.keys()))}"
        )
    # Holds and reversed operations are only ever changed through their source's (the
    # debited wallet's) queue, which this drain holds: locking them here waits on nobody.
    hold_ids = list({op.hold_id for op in operations if op.hold_id is not None})
    reversed_ids = list(
        {op.reverses_operation_id for op in operations if op.reverses_operation_id is not None}
    )
    holds = named.lock_holds(cur, hold_ids) if hold_ids else []
    reversed_operations = named.lock_reversed(cur, reversed_ids) if reversed_ids else []
    event_xid, now = repo.event_key(cur, list(wallets.values()))
    locked = Locked(
        operations, list(wallets.values()), funding, holds, reversed_operations, event_xid
    )

    # The claims and locks above outlive a rollback to this savepoint.
    cur.execute("SAVEPOINT drain")
    faulty: dict[uuid.UUID, Exception] = {}
    try:
        book = locked.write(cur)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        cur.execute("ROLLBACK TO SAVEPOINT drain")
        faulty = locked.find_faulty(cur, exc)
        book = locked.write(cur, faulty=frozenset(faulty))
    result.outcomes = [  # the book holds one outcome per operation, in their order
        (op, status, error_code)
        for op, (_, status, error_code, _) in zip(operations, book.outcomes, strict=True)
    ]
    result.faulty = faulty
    result.batch_ids = {op.batch_id for op in operations if op.batch_id is not None}
    untouched = [w for w in wallets if w not in book.touched]
    if untouched:
        repo.mark_wallets(cur, untouched, locked.event_xid)
    events = outbox.drain_events(
        cur, operations, book.outcomes, book.transactions, now, result.batch_ids, event_xid
    )
    outbox.insert_events(cur, events, locked.event_xid)
    result.event_tenants = {tenant for tenant, _, _, _ in events}
    return result


def _record(result: DrainResult, seconds: float) -> None:
    metrics.drain_seconds.observe(seconds)
    metrics.drain_operations.observe(result.applied)
    now = datetime.now(UTC)
    for operation, status, _ in result.outcomes:
        metrics.operations_completed.labels(operation.type, status).inc()
        metrics.accept_to_final.observe((now - operation.created_at).total_seconds())
    if result.faulty:
        metrics.internal_errors.inc(len(result.faulty))


def drain_round(
    max_ops: int, on_commit: Callable[[DrainResult], None] = lambda _: None
) -> DrainResult:
    """One drain in its own database transaction, logged and counted once committed."""
    started = time.monotonic()
    # The service opens this transaction, not the task: a drain task runs many rounds,
    # each of which must commit before the next claims (its claims end with it), and
    # what is announced after a round is exactly what that round committed.
    with transaction() as cur:
        result = drain_once(cur, max_ops)
    if result.applied:
        _record(result, time.monotonic() - started)
        log.info(
            "drain applied %d operations (%d succeeded, %d failed) over %d wallets",
            result.applied,
            result.succeeded,
            result.applied - result.succeeded,
            result.claimed_wallets,
        )
        for operation, status, error_code in result.outcomes:
            if operation.id in result.faulty:
                cause = result.faulty[operation.id]
                log.error(
                    "operation could not be applied: %s: %s",
                    type(cause).__name__,
                    str(cause).strip(),
                    extra={
                        "operation_id": str(operation.id),
                        "type": operation.type,
                        "request_id": operation.request_id,
                        "tenant_id": str(operation.tenant_id),
                    },
                    exc_info=cause,
                )
            log.info(
                "operation %s",
                status,
                extra={
                    "operation_id": str(operation.id),
                    "type": operation.type,
                    "status": status,
                    "error_code": error_code,
                    "request_id": operation.request_id,
                    "tenant_id": str(operation.tenant_id),
                },
            )
        on_commit(result)
    return result


def drain(
    *,
    max_ops: int,
    max_seconds: float,
    on_commit: Callable[[DrainResult], None] = lambda _: None,
) -> bool:
    """Drain until nothing claimable is left, each round in its own transaction.

    Returns True if it stopped with work possibly left (time is up), so the caller can
    wake another drain.
    """
    deadline = time.monotonic() + max_seconds
    while True:
        result = drain_round(max_ops, on_commit)
        if result.claimed_wallets == 0:
            return False
        if time.monotonic() >= deadline:
            return True
        if result.applied < SMALL_DRAIN:
            # A trickle: wait a moment so that the next drain applies more at once. Each
            # drain has a fixed cost (a claim, a few statements, a commit) that a handful
            # of operations cannot pay for; the pause costs them milliseconds.
            time.sleep(PAUSE_AFTER_SMALL_DRAIN)
