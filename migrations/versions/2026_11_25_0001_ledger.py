"""The ledger: tenants, API keys, accounts, wallets, operations, transactions, postings.

The rules this schema keeps, whatever the Python above it does:

* Money is BIGINT cents. Operation amounts are > 0 and <= 1,000,000,000.00.
* A user wallet's balance is never below zero (`ck_wallet_balance_non_negative`); only the
  funding wallets, which replenishments are balanced against, go negative.
* Double entry: the postings of a ledger transaction sum to zero. Postings are written
  in one statement per batch of transactions and checked at the end of that statement
  (`posting_check_balanced`).
* A wallet's balance is the sum of its postings. Each posting carries its position in
  the wallet (`entry_no`, 1, 2, 3 ... without gaps) and the balance after it;
  `posting_check_chain` refuses a posting whose balance_after is not the previous
  balance_after plus its amount, and `wallet_check_balance` refuses a wallet row whose
  balance and entry_count do not match its last posting. By induction, balance = sum.
* The ledger is append-only: postings and transactions cannot be updated or deleted, and
  neither can wallets or operations be deleted.
* An operation is pending, then succeeded (with exactly one ledger transaction) or
  failed (with an error code), and never changes after that (`operation_final`). A
  transaction is only written for a pending operation (`transaction_check_operations`),
  and an operation is marked succeeded exactly when it has one
  (`operation_check_outcome`).

References between the ledger's rows (a posting's transaction and wallet, a transaction's
operation) are checked once per statement by the same triggers, not by per-row foreign
keys: a drain writes thousands of rows per statement, and a per-row check costs as much
as the row. Since no referenced row can ever be deleted, the checks at insert are all
that a foreign key would have done.
* An idempotency key is unique per tenant (the primary key of `idempotency_key`).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The funding wallets: one system account whose wallets every replenishment is balanced
# against. There are several so that concurrent workers do not queue on one row; their
# sum is "the funding wallet". Fixed ids keep them recognisable in audits.
FUNDING_ACCOUNT_ID = "00000000-0000-7000-8000-000000000000"
FUNDING_SHARDS = 16

UPGRADE = r"""
CREATE TABLE currency (
    code        char(3)  NOT NULL,
    minor_units smallint NOT NULL,
    CONSTRAINT pk_currency PRIMARY KEY (code),
    CONSTRAINT ck_currency_minor_units CHECK (minor_units BETWEEN 0 AND 4)
);
INSERT INTO currency (code, minor_units) VALUES ('USD', 2);

CREATE TABLE tenant (
    id         uuid        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_tenant PRIMARY KEY (id),
    CONSTRAINT uq_tenant_name UNIQUE (name),
    CONSTRAINT ck_tenant_name CHECK (char_length(name) BETWEEN 1 AND 200)
);

CREATE TABLE api_key (
    id         uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    prefix     text        NOT NULL,
    key_hash   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT pk_api_key PRIMARY KEY (id),
    CONSTRAINT fk_api_key_tenant_id_tenant FOREIGN KEY (tenant_id) REFERENCES tenant (id),
    CONSTRAINT uq_api_key_key_hash UNIQUE (key_hash),
    CONSTRAINT ck_api_key_key_hash CHECK (octet_length(key_hash) = 32)
);
CREATE INDEX ix_api_key_tenant_id ON api_key (tenant_id);

-- Accounts and wallets of the funding account have no tenant: no API key can see them.
CREATE TABLE account (
    id         uuid        NOT NULL,
    tenant_id  uuid,
    kind       text        NOT NULL DEFAULT 'user',
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_account PRIMARY KEY (id),
    CONSTRAINT uq_account_id_tenant_id UNIQUE (id, tenant_id),
    CONSTRAINT fk_account_tenant_id_tenant FOREIGN KEY (tenant_id) REFERENCES tenant (id),
    CONSTRAINT ck_account_kind CHECK (kind IN ('user', 'system')),
    CONSTRAINT ck_account_tenant CHECK ((kind = 'user') = (tenant_id IS NOT NULL)),
    CONSTRAINT ck_account_name CHECK (char_length(name) BETWEEN 1 AND 200 AND btrim(name) <> '')
);
-- Listing, newest first: ids are UUIDv7, ordered by creation time.
CREATE INDEX ix_account_tenant_id_id ON account (tenant_id, id);

CREATE TABLE wallet (
    id          uuid        NOT NULL,
    account_id  uuid        NOT NULL,
    tenant_id   uuid,
    kind        text        NOT NULL DEFAULT 'user',
    currency    char(3)     NOT NULL,
    balance     bigint      NOT NULL DEFAULT 0,
    entry_count bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_wallet PRIMARY KEY (id),
    CONSTRAINT uq_wallet_id_tenant_id UNIQUE (id, tenant_id),
    CONSTRAINT fk_wallet_account_id_account FOREIGN KEY (account_id) REFERENCES account (id),
    -- A user wallet belongs to its account's tenant.
    CONSTRAINT fk_wallet_account_id_tenant_id_account FOREIGN KEY (account_id, tenant_id)
        REFERENCES account (id, tenant_id),
    CONSTRAINT fk_wallet_currency_currency FOREIGN KEY (currency) REFERENCES currency (code),
    CONSTRAINT ck_wallet_kind CHECK (kind IN ('user', 'funding')),
    CONSTRAINT ck_wallet_tenant CHECK ((kind = 'user') = (tenant_id IS NOT NULL)),
    CONSTRAINT ck_wallet_balance_non_negative CHECK (kind = 'funding' OR balance >= 0),
    CONSTRAINT ck_wallet_entry_count CHECK (entry_count >= 0 AND (entry_count > 0 OR balance = 0))
) WITH (fillfactor = 50);  -- room for HOT updates: balances change all the time
-- One wallet per user account.
CREATE UNIQUE INDEX uq_wallet_account_id_user ON wallet (account_id) WHERE kind = 'user';

CREATE TABLE replenishment_batch (
    id         uuid        NOT NULL,
    tenant_id  uuid        NOT NULL,
    total      integer     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_replenishment_batch PRIMARY KEY (id),
    CONSTRAINT uq_replenishment_batch_id_tenant_id UNIQUE (id, tenant_id),
    CONSTRAINT fk_replenishment_batch_tenant_id_tenant FOREIGN KEY (tenant_id)
        REFERENCES tenant (id),
    CONSTRAINT ck_replenishment_batch_total CHECK (total BETWEEN 1 AND 10000)
);

-- Each user wallet's queue of operations: the replenishments of the wallet and the
-- transfers out of it. The intake takes the next position under this row's lock, so
-- positions follow the order in which the operations commit (and their 202s go out).
-- Kept apart from `wallet`, whose rows drains hold locked, so accepting never waits on
-- applying.
CREATE TABLE wallet_sequence (
    wallet_id     uuid   NOT NULL,
    last_position bigint NOT NULL DEFAULT 0,
    CONSTRAINT pk_wallet_sequence PRIMARY KEY (wallet_id),
    CONSTRAINT fk_wallet_sequence_wallet_id_wallet FOREIGN KEY (wallet_id) REFERENCES wallet (id),
    CONSTRAINT ck_wallet_sequence_last_position CHECK (last_position >= 0)
);

-- An operation is a request to move money. `queue_wallet_id` is the wallet whose queue it
-- is in (the replenished wallet, or the transfer's source) and `position` its place there:
-- the worker applies a wallet's operations in `position` order. `seq` orders all
-- operations roughly by arrival, for fairness between wallets.
CREATE TABLE operation (
    id              uuid        NOT NULL,
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    tenant_id       uuid        NOT NULL,
    type            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    amount          bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    wallet_id       uuid,
    from_wallet_id  uuid,
    to_wallet_id    uuid,
    queue_wallet_id uuid        GENERATED ALWAYS AS (COALESCE(wallet_id, from_wallet_id)) STORED,
    position        bigint      NOT NULL,
    reference       text,
    batch_id        uuid,
    idempotency_key text,
    request_id      text,
    error_code      text,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CONSTRAINT pk_operation PRIMARY KEY (id),
    CONSTRAINT uq_operation_queue_wallet_id_position UNIQUE (queue_wallet_id, position),
    CONSTRAINT ck_operation_position_positive CHECK (position > 0),
    CONSTRAINT fk_operation_tenant_id_tenant FOREIGN KEY (tenant_id) REFERENCES tenant (id),
    CONSTRAINT fk_operation_currency_currency FOREIGN KEY (currency) REFERENCES currency (code),
    -- Every wallet an operation names belongs to the operation's tenant.
    CONSTRAINT fk_operation_wallet_id_wallet FOREIGN KEY (wallet_id, tenant_id)
        REFERENCES wallet (id, tenant_id),
    CONSTRAINT fk_operation_from_wallet_id_wallet FOREIGN KEY (from_wallet_id, tenant_id)
        REFERENCES wallet (id, tenant_id),
    CONSTRAINT fk_operation_to_wallet_id_wallet FOREIGN KEY (to_wallet_id, tenant_id)
        REFERENCES wallet (id, tenant_id),
    CONSTRAINT fk_operation_batch_id_replenishment_batch FOREIGN KEY (batch_id, tenant_id)
        REFERENCES replenishment_batch (id, tenant_id),
    CONSTRAINT ck_operation_type CHECK (type IN ('replenishment', 'transfer')),
    CONSTRAINT ck_operation_status CHECK (status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT ck_operation_amount_positive CHECK (amount > 0 AND amount <= 100000000000),
    CONSTRAINT ck_operation_shape CHECK (
        (type = 'replenishment' AND wallet_id IS NOT NULL
            AND from_wallet_id IS NULL AND to_wallet_id IS NULL)
        OR (type = 'transfer' AND wallet_id IS NULL AND batch_id IS NULL
            AND from_wallet_id IS NOT NULL AND to_wallet_id IS NOT NULL
            AND from_wallet_id <> to_wallet_id)),
    CONSTRAINT ck_operation_reference CHECK (char_length(reference) <= 255),
    CONSTRAINT ck_operation_failed CHECK ((status = 'failed') = (error_code IS NOT NULL)),
    CONSTRAINT ck_operation_completed CHECK ((status = 'pending') = (completed_at IS NULL))
);
-- What the worker scans: pending operations in acceptance order, and per wallet.
CREATE INDEX ix_operation_pending_seq ON operation (seq) INCLUDE (queue_wallet_id)
    WHERE status = 'pending';
CREATE INDEX ix_operation_pending_queue_wallet_id_position ON operation (queue_wallet_id, position)
    WHERE status = 'pending';
CREATE INDEX ix_operation_batch_id_seq ON operation (batch_id, seq) WHERE batch_id IS NOT NULL;

CREATE TABLE transaction (
    id           uuid        NOT NULL,
    operation_id uuid        NOT NULL,
    type         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_transaction PRIMARY KEY (id),
    -- One ledger transaction per operation, ever: the heart of exactly-once.
    CONSTRAINT uq_transaction_operation_id UNIQUE (operation_id),
    CONSTRAINT ck_transaction_type CHECK (type IN ('replenishment', 'transfer'))
);

CREATE TABLE posting (
    id             uuid        NOT NULL,
    transaction_id uuid        NOT NULL,
    wallet_id      uuid        NOT NULL,
    entry_no       bigint      NOT NULL,
    amount         bigint      NOT NULL,
    balance_after  bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_posting PRIMARY KEY (id),
    CONSTRAINT uq_posting_wallet_id_entry_no UNIQUE (wallet_id, entry_no),
    CONSTRAINT ck_posting_amount_non_zero CHECK (amount <> 0),
    CONSTRAINT ck_posting_entry_no_positive CHECK (entry_no > 0)
);
CREATE INDEX ix_posting_transaction_id ON posting (transaction_id);

CREATE TABLE idempotency_key (
    tenant_id     uuid        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    resource_type text        NOT NULL,
    resource_id   uuid        NOT NULL,
    status_code   smallint    NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_idempotency_key PRIMARY KEY (tenant_id, key),
    CONSTRAINT fk_idempotency_key_tenant_id_tenant FOREIGN KEY (tenant_id) REFERENCES tenant (id),
    CONSTRAINT ck_idempotency_key_key CHECK (key ~ '^[\x20-\x7e]{1,255}$'),
    CONSTRAINT ck_idempotency_key_resource_type
        CHECK (resource_type IN ('account', 'operation', 'replenishment_batch'))
);
CREATE INDEX ix_idempotency_key_created_at ON idempotency_key (created_at);

-- Double entry, checked once per INSERT statement over the transactions it touched.
-- The transition tables have no statistics, and the planner, left to itself, answers these
-- checks by hashing the whole ledger: each check costs more with every posting ever
-- written. So the check functions plan with index probes only (their SET clauses): a few
-- lookups per new row, whatever the size of the ledger.
CREATE FUNCTION posting_check_balanced() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.transaction_id INTO bad
    FROM (SELECT DISTINCT transaction_id FROM new_postings) n
    WHERE NOT EXISTS (SELECT 1 FROM transaction t WHERE t.id = n.transaction_id)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'postings name transaction %, which does not exist', bad
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'posting_balanced';
    END IF;
    SELECT n.transaction_id INTO bad
    FROM (SELECT DISTINCT transaction_id FROM new_postings) n
    CROSS JOIN LATERAL (
        SELECT sum(p.amount) AS total, count(*) AS legs
        FROM posting p WHERE p.transaction_id = n.transaction_id
    ) s
    WHERE s.total <> 0 OR s.legs < 2
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'postings of transaction % do not balance', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'posting_balanced';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER posting_balanced AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION posting_check_balanced();

-- Each posting continues its wallet's chain: entry_no follows the previous one and
-- balance_after is the previous balance plus the amount.
CREATE FUNCTION posting_check_chain() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.wallet_id INTO bad
    FROM (SELECT DISTINCT wallet_id FROM new_postings) n
    WHERE NOT EXISTS (SELECT 1 FROM wallet w WHERE w.id = n.wallet_id)
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'postings name wallet %, which does not exist', bad
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'posting_chain';
    END IF;
    SELECT n.id INTO bad
    FROM new_postings n
    LEFT JOIN LATERAL (
        SELECT p.balance_after FROM posting p
        WHERE p.wallet_id = n.wallet_id AND p.entry_no = n.entry_no - 1
    ) prev ON true
    WHERE (n.entry_no > 1 AND prev.balance_after IS NULL)
       OR n.balance_after <> COALESCE(prev.balance_after, 0) + n.amount
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'posting % does not continue its wallet''s balance', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'posting_chain';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER posting_chain AFTER INSERT ON posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION posting_check_chain();

-- A wallet's balance is its last posting's balance_after.
CREATE FUNCTION wallet_check_balance() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT w.id INTO bad
    FROM new_wallets w
    LEFT JOIN LATERAL (
        SELECT p.balance_after FROM posting p
        WHERE p.wallet_id = w.id AND p.entry_no = w.entry_count
    ) last ON true
    LEFT JOIN LATERAL (
        SELECT true AS found FROM posting p
        WHERE p.wallet_id = w.id AND p.entry_no = w.entry_count + 1
    ) beyond ON true
    WHERE (w.entry_count > 0 AND (last.balance_after IS NULL OR last.balance_after <> w.balance))
       OR (w.entry_count = 0 AND w.balance <> 0)
       OR beyond.found
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'balance of wallet % is not the sum of its postings', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallet_balance_matches_postings';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER wallet_balance_matches_postings AFTER UPDATE ON wallet
    REFERENCING NEW TABLE AS new_wallets
    FOR EACH STATEMENT EXECUTE FUNCTION wallet_check_balance();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON posting
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON posting
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER transaction_append_only BEFORE UPDATE OR DELETE ON transaction
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER transaction_no_truncate BEFORE TRUNCATE ON transaction
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- An operation's request never changes, and its outcome is written once. The WHEN clause
-- is evaluated without calling the function, so a legitimate update costs nothing here.
CREATE FUNCTION operation_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'operation % is % and final', OLD.id, OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'operation_final';
    END IF;
    RAISE EXCEPTION 'operation % may only change its outcome', OLD.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'operation_final';
END $$;
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

CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER operation_no_delete BEFORE DELETE ON operation
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER operation_no_truncate BEFORE TRUNCATE ON operation
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER wallet_no_delete BEFORE DELETE ON wallet
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER wallet_no_truncate BEFORE TRUNCATE ON wallet
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();

-- A ledger transaction belongs to an operation that is still pending (the drain that
-- writes it marks the operation succeeded in the same database transaction).
CREATE FUNCTION transaction_check_operations() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.operation_id INTO bad
    FROM new_transactions n
    LEFT JOIN LATERAL (
        SELECT o.status, o.type FROM operation o WHERE o.id = n.operation_id
    ) o ON true
    WHERE o.status IS NULL OR o.status <> 'pending' OR o.type <> n.type
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'operation % is not a pending operation of this type', bad
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'transaction_operation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transaction_operation AFTER INSERT ON transaction
    REFERENCING NEW TABLE AS new_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION transaction_check_operations();

-- An operation is marked succeeded exactly when it has its ledger transaction.
CREATE FUNCTION operation_check_outcome() RETURNS trigger LANGUAGE plpgsql
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
        RAISE EXCEPTION 'operation % is marked succeeded without its transaction, or '
                        'otherwise with one', bad
            USING ERRCODE = 'check_violation', CONSTRAINT = 'operation_outcome';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER operation_outcome AFTER UPDATE ON operation
    REFERENCING NEW TABLE AS new_operations
    FOR EACH STATEMENT EXECUTE FUNCTION operation_check_outcome();
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS idempotency_key;
DROP TABLE IF EXISTS posting;
DROP TABLE IF EXISTS transaction;
DROP TABLE IF EXISTS operation;
DROP TABLE IF EXISTS replenishment_batch;
DROP TABLE IF EXISTS wallet_sequence;
DROP TABLE IF EXISTS wallet;
DROP TABLE IF EXISTS account;
DROP TABLE IF EXISTS api_key;
DROP TABLE IF EXISTS tenant;
DROP TABLE IF EXISTS currency;
DROP FUNCTION IF EXISTS posting_check_balanced();
DROP FUNCTION IF EXISTS posting_check_chain();
DROP FUNCTION IF EXISTS wallet_check_balance();
DROP FUNCTION IF EXISTS ledger_append_only();
DROP FUNCTION IF EXISTS operation_refuse_change();
DROP FUNCTION IF EXISTS refuse_delete();
DROP FUNCTION IF EXISTS transaction_check_operations();
DROP FUNCTION IF EXISTS operation_check_outcome();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(
        "INSERT INTO account (id, tenant_id, kind, name) "
        f"VALUES ('{FUNDING_ACCOUNT_ID}', NULL, 'system', 'funding')"
    )
    for shard in range(FUNDING_SHARDS):
        wallet_id = f"00000000-0000-7000-8000-{shard + 1:012x}"
        op.execute(
            "INSERT INTO wallet (id, account_id, tenant_id, kind, currency) "
            f"VALUES ('{wallet_id}', '{FUNDING_ACCOUNT_ID}', NULL, 'funding', 'USD')"
        )


def downgrade() -> None:
    op.execute(DOWNGRADE)
