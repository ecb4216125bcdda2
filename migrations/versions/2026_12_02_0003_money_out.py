"""Money out, money held, money given back: withdrawals, holds (capture, void, expiry) and
reversals.

The rules this migration adds, whatever the Python above it does:

* A wallet's `held` is the money reserved by its active holds: never negative
  (`ck_wallet_held_non_negative`), and never more than its balance: a user wallet's
  available balance, `balance - held`, is never below zero
  (`ck_wallet_held_within_balance`). Funding wallets hold nothing.
* A hold is created when its hold operation succeeds, `held`; it then becomes `captured`
  (with the amount captured, at most the hold's: `ck_hold_captured_amount`), `voided` or
  `expired`, once, and never changes again (`hold_final`).
* An operation's `reversed_amount`, the sum of its succeeded reversals, never exceeds its
  amount (`ck_operation_reversed_amount`), only grows, and only on a succeeded operation
  (`operation_final`, which otherwise keeps a final operation unchanged).
* Holds, voids and expiries move no money: they succeed without a ledger transaction
  (`operation_check_outcome`); every other kind succeeds with exactly one.
* Each operation's shape is its kind's (`ck_operation_shape`): the wallets it names, its
  hold, the operation it reverses. An operation's queue is the first wallet it names
  (its wallet, else the wallet it debits, else the one it credits): `queue_wallet_id`.
* One expiry per hold (`uq_operation_expiry_hold_id`): the sweeper may enqueue it twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE wallet ADD COLUMN held bigint NOT NULL DEFAULT 0;
ALTER TABLE wallet ADD CONSTRAINT ck_wallet_held_non_negative CHECK (held >= 0);
ALTER TABLE wallet ADD CONSTRAINT ck_wallet_held_within_balance
    CHECK (kind = 'funding' OR balance - held >= 0);
ALTER TABLE wallet ADD CONSTRAINT ck_wallet_funding_holds_nothing
    CHECK (kind = 'user' OR held = 0);

-- The queue is the first wallet an operation names: its wallet (replenishment,
-- withdrawal), else the wallet it debits (transfer, hold, capture, void, expiry, most
-- reversals), else the one it credits (a withdrawal's reversal, a reversal of a capture
-- to the funding side). A generated column's expression cannot be changed in place.
ALTER TABLE operation DROP COLUMN queue_wallet_id;
ALTER TABLE operation ADD COLUMN queue_wallet_id uuid
    GENERATED ALWAYS AS (COALESCE(wallet_id, from_wallet_id, to_wallet_id)) STORED;
ALTER TABLE operation ADD CONSTRAINT uq_operation_queue_wallet_id_position
    UNIQUE (queue_wallet_id, position);
CREATE INDEX ix_operation_pending_seq ON operation (seq) INCLUDE (queue_wallet_id)
    WHERE status = 'pending';
CREATE INDEX ix_operation_pending_queue_wallet_id_position ON operation (queue_wallet_id, position)
    WHERE status = 'pending';

ALTER TABLE operation
    ADD COLUMN hold_id uuid,
    ADD COLUMN reverses_operation_id uuid,
    ADD COLUMN reversed_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN expires_at timestamptz;
ALTER TABLE operation ADD CONSTRAINT uq_operation_id_tenant_id UNIQUE (id, tenant_id);
ALTER TABLE operation ADD CONSTRAINT fk_operation_hold_id_operation
    FOREIGN KEY (hold_id, tenant_id) REFERENCES operation (id, tenant_id);
ALTER TABLE operation ADD CONSTRAINT fk_operation_reverses_operation_id_operation
    FOREIGN KEY (reverses_operation_id, tenant_id) REFERENCES operation (id, tenant_id);
ALTER TABLE operation ADD CONSTRAINT ck_operation_reversed_amount
    CHECK (reversed_amount >= 0 AND reversed_amount <= amount);
ALTER TABLE operation DROP CONSTRAINT ck_operation_type;
ALTER TABLE operation ADD CONSTRAINT ck_operation_type CHECK (type IN (
    'replenishment', 'transfer', 'withdrawal', 'hold', 'capture', 'void', 'expiry', 'reversal'));
ALTER TABLE operation DROP CONSTRAINT ck_operation_shape;
ALTER TABLE operation ADD CONSTRAINT ck_operation_shape CHECK (
    (batch_id IS NULL OR type = 'replenishment')
    AND (hold_id IS NOT NULL) = (type IN ('capture', 'void', 'expiry'))
    AND (reverses_operation_id IS NOT NULL) = (type = 'reversal')
    AND (expires_at IS NOT NULL) = (type = 'hold')
    AND (reversed_amount = 0 OR type IN ('replenishment', 'transfer', 'withdrawal', 'capture'))
    AND CASE
        WHEN type IN ('replenishment', 'withdrawal') THEN
            wallet_id IS NOT NULL AND from_wallet_id IS NULL AND to_wallet_id IS NULL
        WHEN type = 'transfer' THEN
            wallet_id IS NULL AND from_wallet_id IS NOT NULL AND to_wallet_id IS NOT NULL
            AND from_wallet_id <> to_wallet_id
        WHEN type IN ('hold', 'capture', 'void', 'expiry') THEN
            wallet_id IS NULL AND from_wallet_id IS NOT NULL
            AND from_wallet_id IS DISTINCT FROM to_wallet_id
        WHEN type = 'reversal' THEN
            wallet_id IS NULL AND (from_wallet_id IS NOT NULL OR to_wallet_id IS NOT NULL)
            AND from_wallet_id IS DISTINCT FROM to_wallet_id
        ELSE false
    END);
-- The sweeper enqueues a hold's expiry; doing it twice is refused.
CREATE UNIQUE INDEX uq_operation_expiry_hold_id ON operation (hold_id) WHERE type = 'expiry';
-- Reversals of an operation, and captures and voids of a hold, by what they name.
CREATE INDEX ix_operation_reverses_operation_id ON operation (reverses_operation_id)
    WHERE reverses_operation_id IS NOT NULL;
CREATE INDEX ix_operation_hold_id ON operation (hold_id) WHERE hold_id IS NOT NULL;

ALTER TABLE transaction DROP CONSTRAINT ck_transaction_type;
ALTER TABLE transaction ADD CONSTRAINT ck_transaction_type
    CHECK (type IN ('replenishment', 'transfer', 'withdrawal', 'capture', 'reversal'));

CREATE TABLE hold (
    id              uuid        NOT NULL,
    tenant_id       uuid        NOT NULL,
    from_wallet_id  uuid        NOT NULL,
    to_wallet_id    uuid,
    amount          bigint      NOT NULL,
    status          text        NOT NULL DEFAULT 'held',
    captured_amount bigint,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_hold PRIMARY KEY (id),
    -- The hold is its hold operation's: same id, tenant, wallets and amount.
    CONSTRAINT fk_hold_id_operation FOREIGN KEY (id, tenant_id)
        REFERENCES operation (id, tenant_id),
    CONSTRAINT fk_hold_from_wallet_id_wallet FOREIGN KEY (from_wallet_id, tenant_id)
        REFERENCES wallet (id, tenant_id),
    CONSTRAINT fk_hold_to_wallet_id_wallet FOREIGN KEY (to_wallet_id, tenant_id)
        REFERENCES wallet (id, tenant_id),
    CONSTRAINT ck_hold_amount_positive CHECK (amount > 0),
    CONSTRAINT ck_hold_status CHECK (status IN ('held', 'captured', 'voided', 'expired')),
    CONSTRAINT ck_hold_captured_amount CHECK (
        (status = 'captured') = (captured_amount IS NOT NULL)
        AND (captured_amount IS NULL OR (captured_amount > 0 AND captured_amount <= amount)))
);
-- What the sweeper looks for, and what the audit sums per wallet.
CREATE INDEX ix_hold_held_expires_at ON hold (expires_at) WHERE status = 'held';
CREATE INDEX ix_hold_held_from_wallet_id ON hold (from_wallet_id) WHERE status = 'held';

-- A hold is held, then captured, voided or expired once; nothing else of it changes.
CREATE FUNCTION hold_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hold % is % and may only end once', OLD.id, OLD.status
        USING ERRCODE = 'check_violation', CONSTRAINT = 'hold_final';
END $$;
CREATE TRIGGER hold_final BEFORE UPDATE ON hold
    FOR EACH ROW
    WHEN (OLD.status <> 'held' OR NEW.status = 'held'
          OR (NEW.id, NEW.tenant_id, NEW.from_wallet_id, NEW.to_wallet_id, NEW.amount,
              NEW.expires_at, NEW.created_at)
             IS DISTINCT FROM
             (OLD.id, OLD.tenant_id, OLD.from_wallet_id, OLD.to_wallet_id, OLD.amount,
              OLD.expires_at, OLD.created_at))
    EXECUTE FUNCTION hold_refuse_change();
CREATE TRIGGER hold_no_delete BEFORE DELETE ON hold
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();

-- An operation's request never changes, and its outcome is written once; afterwards only
-- a succeeded operation's reversed_amount may grow.
DROP TRIGGER operation_final ON operation;
CREATE TRIGGER operation_final BEFORE UPDATE ON operation
    FOR EACH ROW
    WHEN ((OLD.status <> 'pending'
           AND (NEW.status, NEW.error_code, NEW.error_message, NEW.completed_at)
               IS DISTINCT FROM
               (OLD.status, OLD.error_code, OLD.error_message, OLD.completed_at))
          OR (NEW.reversed_amount <> OLD.reversed_amount
              AND (OLD.status <> 'succeeded' OR NEW.reversed_amount < OLD.reversed_amount))
          OR (NEW.id, NEW.seq, NEW.position, NEW.tenant_id, NEW.type, NEW.amount,
              NEW.currency, NEW.wallet_id, NEW.from_wallet_id, NEW.to_wallet_id,
              NEW.reference, NEW.batch_id, NEW.idempotency_key, NEW.request_id,
              NEW.created_at, NEW.hold_id, NEW.reverses_operation_id, NEW.expires_at)
             IS DISTINCT FROM
             (OLD.id, OLD.seq, OLD.position, OLD.tenant_id, OLD.type, OLD.amount,
              OLD.currency, OLD.wallet_id, OLD.from_wallet_id, OLD.to_wallet_id,
              OLD.reference, OLD.batch_id, OLD.idempotency_key, OLD.request_id,
              OLD.created_at, OLD.hold_id, OLD.reverses_operation_id, OLD.expires_at))
    EXECUTE FUNCTION operation_refuse_change();

-- Succeeded with its one transaction, except the kinds that move no money.
CREATE OR REPLACE FUNCTION operation_check_outcome() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.id INTO bad
    FROM new_operations n
    LEFT JOIN LATERAL (
        SELECT true AS found FROM transaction t WHERE t.operation_id = n.id
    ) t ON true
    WHERE (n.status = 'succeeded' AND n.type NOT IN ('hold', 'void', 'expiry'))
          <> (t.found IS NOT NULL)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'operation % is marked succeeded without its transaction, or '
                        'otherwise with one', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'operation_outcome';
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # Operations of the new kinds cannot be expressed in the older schema: downgrading
    # below 0003 is for an empty database (tests, `alembic downgrade base`).
    op.execute(
        """
        DROP TABLE IF EXISTS hold;
        DROP FUNCTION IF EXISTS hold_refuse_change();
        DROP TRIGGER operation_final ON operation;
        CREATE TRIGGER operation_final BEFORE UPDATE ON operation
            FOR EACH ROW
            WHEN (OLD.status <> 'pending'
                  OR (NEW.id, NEW.seq, NEW.position, NEW.tenant_id, NEW.type, NEW.amount,
                      NEW.currency, NEW.wallet_id, NEW.from_wallet_id, NEW.to_wallet_id,
                      NEW.reference, NEW.batch_id, NEW.idempotency_key, NEW.request_id,
                      NEW.created_at)
                     IS DISTINCT FROM
                     (OLD.id, OLD.seq, OLD.position, OLD.tenant_id, OLD.type, OLD.amount,
                      OLD.currency, OLD.wallet_id, OLD.from_wallet_id, OLD.to_wallet_id,
                      OLD.reference, OLD.batch_id, OLD.idempotency_key, OLD.request_id,
                      OLD.created_at))
            EXECUTE FUNCTION operation_refuse_change();
        ALTER TABLE transaction DROP CONSTRAINT ck_transaction_type;
        ALTER TABLE transaction ADD CONSTRAINT ck_transaction_type
            CHECK (type IN ('replenishment', 'transfer'));
        ALTER TABLE operation DROP CONSTRAINT ck_operation_shape;
        ALTER TABLE operation DROP CONSTRAINT ck_operation_type;
        ALTER TABLE operation DROP CONSTRAINT fk_operation_hold_id_operation;
        ALTER TABLE operation DROP CONSTRAINT fk_operation_reverses_operation_id_operation;
        ALTER TABLE operation DROP CONSTRAINT uq_operation_id_tenant_id;
        ALTER TABLE operation DROP COLUMN hold_id, DROP COLUMN reverses_operation_id,
            DROP COLUMN reversed_amount, DROP COLUMN expires_at;
        ALTER TABLE operation ADD CONSTRAINT ck_operation_type
            CHECK (type IN ('replenishment', 'transfer'));
        ALTER TABLE operation ADD CONSTRAINT ck_operation_shape CHECK (
            (type = 'replenishment' AND wallet_id IS NOT NULL
                AND from_wallet_id IS NULL AND to_wallet_id IS NULL)
            OR (type = 'transfer' AND wallet_id IS NULL AND batch_id IS NULL
                AND from_wallet_id IS NOT NULL AND to_wallet_id IS NOT NULL
                AND from_wallet_id <> to_wallet_id));
        ALTER TABLE operation DROP COLUMN queue_wallet_id;
        ALTER TABLE operation ADD COLUMN queue_wallet_id uuid
            GENERATED ALWAYS AS (COALESCE(wallet_id, from_wallet_id)) STORED;
        ALTER TABLE operation ADD CONSTRAINT uq_operation_queue_wallet_id_position
            UNIQUE (queue_wallet_id, position);
        CREATE INDEX ix_operation_pending_seq ON operation (seq) INCLUDE (queue_wallet_id)
            WHERE status = 'pending';
        CREATE INDEX ix_operation_pending_queue_wallet_id_position
            ON operation (queue_wallet_id, position) WHERE status = 'pending';
        ALTER TABLE wallet DROP CONSTRAINT ck_wallet_funding_holds_nothing;
        ALTER TABLE wallet DROP CONSTRAINT ck_wallet_held_within_balance;
        ALTER TABLE wallet DROP CONSTRAINT ck_wallet_held_non_negative;
        ALTER TABLE wallet DROP COLUMN held;
        CREATE OR REPLACE FUNCTION operation_check_outcome() RETURNS trigger
        LANGUAGE plpgsql
        SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
        DECLARE
            bad uuid;
        BEGIN
            SELECT n.id INTO bad
            FROM new_operations n
            LEFT JOIN LATERAL (
                SELECT true AS found FROM transaction t WHERE t.operation_id = n.id
            ) t ON true
            WHERE (n.status = 'succeeded') <> (t.found IS NOT NULL)
            LIMIT 1;
            IF bad IS NOT NULL THEN
                RAISE EXCEPTION 'operation % is marked succeeded without its transaction, '
                                'or otherwise with one', bad
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'operation_outcome';
            END IF;
            RETURN NULL;
        END $$;
        """
    )
