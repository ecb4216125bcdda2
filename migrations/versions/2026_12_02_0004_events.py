"""Events and webhooks: the transactional outbox, webhook endpoints, their deliveries and
the log of every delivery attempt.

The rules this migration adds, whatever the Python above it does:

* An event is written in the transaction of the change it records. Its feed key `xid` is
  that transaction's id (`pg_current_xact_id()`, 64 bits, never wrapping), or, for a
  drain, the greatest of that and the keys of the drains that touched the same wallets
  before it (`wallet.event_xid`): so a wallet's events follow the order in which they
  were applied, even when a drain took its transaction id before waiting for a wallet
  that another drain held. The feed is ordered by `(xid, seq)` and serves only events
  whose key is older than every transaction still running (`pg_snapshot_xmin`); a key is
  never below its transaction's id, so no later commit can appear before a position a
  reader has passed (see `shared/events/repository.py`).
* Events are never changed nor deleted (`event_append_only`).
* One delivery per endpoint and event (the primary key of `webhook_delivery`); an
  attempt counts from 1 and is logged once (`uq_webhook_attempt_endpoint_event_attempt`).
* An endpoint, its deliveries and their attempts belong to one tenant, the event's too
  (tenant-checked foreign keys).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- The feed key of the last drain that locked the wallet (see above), or that applied
-- items of the batch (so that `batch.completed` follows every item's event).
ALTER TABLE wallet ADD COLUMN event_xid xid8;
ALTER TABLE replenishment_batch ADD COLUMN event_xid xid8;

CREATE TABLE event (
    id          uuid        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id   uuid        NOT NULL,
    type        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The resource as it was at that moment, as the API renders it (kept as text: key
    -- order is the API's, and nothing queries inside it).
    data        json        NOT NULL,
    -- An event is always named with its tenant (reads, deliveries): one index serves both.
    CONSTRAINT pk_event PRIMARY KEY (id, tenant_id),
    CONSTRAINT fk_event_tenant_id_tenant FOREIGN KEY (tenant_id) REFERENCES tenant (id),
    CONSTRAINT ck_event_type CHECK (type IN (
        'account.created', 'operation.succeeded', 'operation.failed',
        'batch.completed', 'hold.expired'))
);
-- When events began: changes made before (by an older version) have none, and the audit
-- only asks for the events of changes made since.
CREATE TABLE event_log_start (
    started_at timestamptz NOT NULL DEFAULT now(),
    single     boolean     NOT NULL DEFAULT true,
    CONSTRAINT pk_event_log_start PRIMARY KEY (single),
    CONSTRAINT ck_event_log_start_single CHECK (single)
);
INSERT INTO event_log_start DEFAULT VALUES;

-- The feed: a tenant's events in (xid, seq) order.
CREATE INDEX ix_event_tenant_id_xid_seq ON event (tenant_id, xid, seq);

CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON event
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON event
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

CREATE TABLE webhook_endpoint (
    id              uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    url             text        NOT NULL,
    event_types     text[]      NOT NULL,
    description     text,
    -- The signing secret, encrypted with PAYSYS_WEBHOOK_SECRET_KEYS when set
    -- (`shared/webhooks/secrets.py`).
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    -- Failing since (no 2xx since then); disabled once that is too long ago.
    failing_since   timestamptz,
    disabled_at     timestamptz,
    disabled_reason text,
    -- Where fan-out has reached in the tenant's feed: events after it are not yet turned
    -- into deliveries. Starts at the feed's horizon when the endpoint is registered.
    fanout_xid      xid8        NOT NULL,
    fanout_seq      bigint      NOT NULL DEFAULT 0,
    CONSTRAINT pk_webhook_endpoint PRIMARY KEY (id),
    CONSTRAINT uq_webhook_endpoint_id_tenant_id UNIQUE (id, tenant_id),
    CONSTRAINT fk_webhook_endpoint_tenant_id_tenant FOREIGN KEY (tenant_id)
        REFERENCES tenant (id),
    CONSTRAINT ck_webhook_endpoint_url CHECK (
        url ~ '^https?://' AND char_length(url) <= 2048),
    CONSTRAINT ck_webhook_endpoint_event_types CHECK (
        cardinality(event_types) >= 1 AND event_types <@ ARRAY[
            '*', 'account.created', 'operation.succeeded', 'operation.failed',
            'batch.completed', 'hold.expired']::text[]),
    CONSTRAINT ck_webhook_endpoint_description CHECK (char_length(description) <= 500),
    CONSTRAINT ck_webhook_endpoint_disabled CHECK (
        (disabled_at IS NULL) = (disabled_reason IS NULL))
);
CREATE INDEX ix_webhook_endpoint_tenant_id_id ON webhook_endpoint (tenant_id, id)
    WHERE deleted_at IS NULL;

CREATE TABLE webhook_delivery (
    endpoint_id      uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    tenant_id        uuid        NOT NULL,
    -- Attempts made so far (the next one is attempts + 1).
    attempts         integer     NOT NULL DEFAULT 0,
    -- When the next attempt is due; while one is in flight, when its lease ends (a sender
    -- that died is retried then). NULL once delivered or given up.
    next_attempt_at  timestamptz,
    delivered_at     timestamptz,
    given_up_at      timestamptz,
    event_created_at timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_webhook_delivery PRIMARY KEY (endpoint_id, event_id),
    CONSTRAINT fk_webhook_delivery_endpoint FOREIGN KEY (endpoint_id, tenant_id)
        REFERENCES webhook_endpoint (id, tenant_id),
    CONSTRAINT fk_webhook_delivery_event FOREIGN KEY (event_id, tenant_id)
        REFERENCES event (id, tenant_id),
    CONSTRAINT ck_webhook_delivery_attempts CHECK (attempts >= 0),
    CONSTRAINT ck_webhook_delivery_state CHECK (
        (next_attempt_at IS NULL) = (delivered_at IS NOT NULL OR given_up_at IS NOT NULL)
        AND NOT (delivered_at IS NOT NULL AND given_up_at IS NOT NULL))
);
-- Each endpoint's pending deliveries, soonest due first (claims go endpoint by endpoint,
-- skipping through this index); and its undelivered ones by event time (its health).
CREATE INDEX ix_webhook_delivery_endpoint_due ON webhook_delivery (endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX ix_webhook_delivery_undelivered ON webhook_delivery (endpoint_id, event_created_at)
    WHERE next_attempt_at IS NOT NULL;

CREATE TABLE webhook_attempt (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    endpoint_id     uuid        NOT NULL,
    event_id        uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    attempt         integer     NOT NULL,
    status_code     integer,
    error           text,
    delivered       boolean     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz,
    CONSTRAINT pk_webhook_attempt PRIMARY KEY (id),
    CONSTRAINT fk_webhook_attempt_delivery FOREIGN KEY (endpoint_id, event_id)
        REFERENCES webhook_delivery (endpoint_id, event_id),
    CONSTRAINT fk_webhook_attempt_endpoint FOREIGN KEY (endpoint_id, tenant_id)
        REFERENCES webhook_endpoint (id, tenant_id),
    CONSTRAINT uq_webhook_attempt_endpoint_event_attempt UNIQUE (endpoint_id, event_id, attempt),
    CONSTRAINT ck_webhook_attempt_attempt CHECK (attempt >= 1),
    CONSTRAINT ck_webhook_attempt_outcome CHECK (
        NOT (delivered AND next_attempt_at IS NOT NULL)
        AND (delivered = (status_code BETWEEN 200 AND 299)))
);
-- The delivery log of an endpoint, newest first.
CREATE INDEX ix_webhook_attempt_endpoint_id_id ON webhook_attempt (endpoint_id, id DESC);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS webhook_attempt;
DROP TABLE IF EXISTS webhook_delivery;
DROP TABLE IF EXISTS webhook_endpoint;
DROP TABLE IF EXISTS event;
DROP TABLE IF EXISTS event_log_start;
ALTER TABLE wallet DROP COLUMN IF EXISTS event_xid;
ALTER TABLE replenishment_batch DROP COLUMN IF EXISTS event_xid;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
