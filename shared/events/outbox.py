"""The drain's events, written in the drain's transaction (a transactional outbox).

The rule: an operation's `operation.succeeded` or `operation.failed` event, a hold's
`hold.expired` and a batch's `batch.completed` are inserted by the transaction that makes
that change, after the change and before its commit, in the order the changes were made.
There is no event without its change and no change without its event: one commits with
the other or neither does.

Each event carries its resource as the API renders it at that moment (`shared.resources`):
an operation from what the drain read and decided (no second read: it is the apply path),
a hold or a batch read back from the rows just written; so an event and a `GET` of the
same moment are the same document (`tests/test_events.py` holds them to it).

Feed order (see the migration 0004): the events of a drain get its feed key, `event_xid`,
which is at least its transaction's id and later than the key of any drain that locked one
of the same wallets before (`shared.ledger.repository.event_key`); within a drain, `seq`
follows the order of application.

A batch is completed by the drain that applies its last pending item. Several drains may
apply a batch's items at once, each unable to see the others' uncommitted outcomes, so
each locks the batches it touched (in id order, after all its other locks) and only then
looks for pending items: of two drains finishing one batch, the second to lock sees the
first's commit, and exactly one of them writes the event.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.db import Cursor
from shared.events import BATCH_COMPLETED, HOLD_EXPIRED, OPERATION_FAILED, OPERATION_SUCCEEDED
from shared.ids import uuid7
from shared.ledger.repository import OutcomeRow
from shared.operations import KINDS
from shared.operations.expiry import EXPIRY
from shared.operations.kind import PendingOperation
from shared.operations.repository import BATCH_COLUMNS
from shared.resources import serialize

HOLDS = """
SELECT o.id, o.status AS operation_status, o.from_wallet_id, o.to_wallet_id, o.amount,
       o.currency, o.reference, o.expires_at, o.created_at,
       COALESCE(h.updated_at, o.completed_at, o.created_at) AS updated_at,
       h.status AS hold_status, h.captured_amount
FROM operation o JOIN hold h ON h.id = o.id
WHERE o.id = ANY(%(ids)s::uuid[])
"""

LOCK_BATCHES = """
SELECT id, event_xid::text::bigint FROM replenishment_batch WHERE id = ANY(%(ids)s::uuid[])
ORDER BY id FOR NO KEY UPDATE
"""
# Each drain that applies a batch's items leaves its feed key on the batch, so that the
# drain completing it (which may have taken its own key earlier, then waited for this
# lock) puts `batch.completed` after every item's event.
MARK_BATCHES = """
UPDATE replenishment_batch AS b SET event_xid = v.key::text::xid8
FROM unnest(%(ids)s::uuid[], %(keys)s::bigint[]) AS v (id, key)
WHERE b.id = v.id
"""
# The batches (of those locked) with no pending item left, counted: one probe of the
# index of pending items per batch, then the counts of the completed ones only.
COMPLETED_BATCHES = f"""
SELECT {BATCH_COLUMNS}, b.tenant_id
FROM replenishment_batch b JOIN operation o ON o.batch_id = b.id
WHERE b.id = ANY(%(ids)s::uuid[])
  AND NOT EXISTS (SELECT 1 FROM operation p WHERE p.batch_id = b.id AND p.status = 'pending')
GROUP BY b.id
"""

# tenant, type, data (the resource's JSON), feed key if not the drain's
Event = tuple[uuid.UUID, str, bytes, int | None]


def _rows(cur: Cursor, sql: str, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    cur.execute(sql, {"ids": list(ids)})
    names = [column.name for column in cur.description or ()]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _json(model: Any) -> bytes:
    return bytes(model.__pydantic_serializer__.to_json(model))


def operation_row(
    op: PendingOperation,
    outcome: OutcomeRow,
    transaction_id: uuid.UUID | None,
    completed_at: datetime,
) -> dict[str, Any]:
    """An operation as the drain has just completed it, as `serialize.operation` reads it.
    It was pending until now, so nothing has reversed any of it yet."""
    _, status, error_code, error_message = outcome
    return {
        "id": op.id,
        "type": op.type,
        "status": status,
        "amount": op.amount,
        "currency": op.currency,
        "wallet_id": op.wallet_id,
        "from_wallet_id": op.from_wallet_id,
        "to_wallet_id": op.to_wallet_id,
        "reference": op.reference,
        "batch_id": op.batch_id,
        "transaction_id": transaction_id,
        "hold_id": op.hold_id,
        "reverses_operation_id": op.reverses_operation_id,
        "reversed_amount": 0,
        "error_code": error_code,
        "error_message": error_message,
        "created_at": op.created_at,
        "completed_at": completed_at,
    }


def drain_events(
    cur: Cursor,
    operations: Sequence[PendingOperation],
    outcomes: Sequence[OutcomeRow],
    transactions: Iterable[tuple[uuid.UUID, uuid.UUID, str]],
    completed_at: datetime,
    batch_ids: set[uuid.UUID],
    event_xid: int,
) -> list[Event]:
    """The events of a drain: its operations and their outcomes (in the order applied),
    the ledger transactions it wrote, its time, the batches it touched, its feed key."""
    transaction_of = {operation_id: tx_id for tx_id, operation_id, _ in transactions}
    expired = [op.hold_id for op in operations if op.type == EXPIRY.name and op.hold_id]
    holds = _rows(cur, HOLDS, expired) if expired else {}
    events: list[Event] = []
    for op, outcome in zip(operations, outcomes, strict=True):
        if not KINDS[op.type].internal:
            row = operation_row(op, outcome, transaction_of.get(op.id), completed_at)
            kind = OPERATION_SUCCEEDED if outcome[1] == "succeeded" else OPERATION_FAILED
            events.append((op.tenant_id, kind, _json(serialize.operation(row)), None))
        elif op.type == EXPIRY.name and op.hold_id in holds:
            # An expiry that found its hold captured or voided meanwhile changed nothing;
            # one hold has one expiry (`uq_operation_expiry_hold_id`), so an expired hold
            # here was expired by this one.
            hold = holds[op.hold_id]
            if hold["hold_status"] == "expired":
                events.append((op.tenant_id, HOLD_EXPIRED, _json(serialize.hold(hold)), None))
    if batch_ids:
        ids = sorted(batch_ids)
        cur.execute(LOCK_BATCHES, {"ids": ids})
        keys = {row[0]: max(event_xid, row[1] or 0) for row in cur.fetchall()}
        cur.execute(MARK_BATCHES, {"ids": list(keys), "keys": list(keys.values())})
        for batch_id, row in _rows(cur, COMPLETED_BATCHES, ids).items():
            data = _json(serialize.batch(row))
            events.append((row["tenant_id"], BATCH_COMPLETED, data, keys[batch_id]))
    return events


def _copy_text(value: object) -> str:
    """A value in COPY's text format. JSON has no raw tab or newline (they are escaped in
    its strings); its backslashes must be doubled."""
    return str(value).replace("\\", "\\\\")


def insert_events(cur: Cursor, events: list[Event], event_xid: int) -> None:
    """Insert events with the drain's feed key (or their own), `seq` following their order."""
    if not events:
        return
    buffer = io.StringIO(
        "".join(
            f"{uuid7()}\t{event_xid if key is None else key}\t{tenant}\t{kind}"
            f"\t{_copy_text(data.decode())}\n"
            for tenant, kind, data, key in events
        )
    )
    cur.copy_expert("COPY event (id, xid, tenant_id, type, data) FROM STDIN", buffer)
