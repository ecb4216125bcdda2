"""Protecting the service: a ceiling on user balances, a cheap "is this batch done?".

* A user wallet's balance is at most 999,999,999,999.99 (`ck_wallet_balance_limit`): a
  credit above it fails as `balance_limit_exceeded` in the drain, and the schema refuses it
  should the drain ever let one through. With amounts at most 1,000,000,000.00, no sum of
  a balance and an amount comes near the BIGINT limit.
* Pending operations of batches are indexed on their own: a long poll on a batch asks
  whether any item is still pending with one probe, instead of counting every item.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE wallet ADD CONSTRAINT ck_wallet_balance_limit
    CHECK (kind = 'funding' OR balance <= 99999999999999);
CREATE INDEX ix_operation_pending_batch_id ON operation (batch_id)
    WHERE status = 'pending' AND batch_id IS NOT NULL;
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS ix_operation_pending_batch_id;
ALTER TABLE wallet DROP CONSTRAINT IF EXISTS ck_wallet_balance_limit;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
