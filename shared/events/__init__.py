"""Events: every change of state a client may wait for, written in the transaction of the
change itself (a transactional outbox), read in order by the feed (`GET /v1/events`) and
fanned out to webhook endpoints (`shared.webhooks`)."""

from __future__ import annotations

ACCOUNT_CREATED = "account.created"
OPERATION_SUCCEEDED = "operation.succeeded"
OPERATION_FAILED = "operation.failed"
BATCH_COMPLETED = "batch.completed"
HOLD_EXPIRED = "hold.expired"

# Every type, in the order the API documents them (the schema's ck_event_type).
EVENT_TYPES = (
    ACCOUNT_CREATED,
    OPERATION_SUCCEEDED,
    OPERATION_FAILED,
    BATCH_COMPLETED,
    HOLD_EXPIRED,
)
