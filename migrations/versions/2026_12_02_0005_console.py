"""The console's reads: two small indexes, so that no page of `/console` scans a big table.

* Accounts are found by the start of their name, case-insensitively, in name order: an
  index on `(tenant_id, lower(name) COLLATE "C", id)`. In the "C" collation a prefix
  `LIKE` is a range of that index, and `(name, id)` is the keyset of the result's pages.
* A tenant's `internal_error` operations, newest first: a partial index, as small as
  such operations are rare, instead of a scan of every operation for the few.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE INDEX ix_account_tenant_id_lower_name_id
    ON account (tenant_id, (lower(name) COLLATE "C"), id);
CREATE INDEX ix_operation_internal_error_tenant_id_id ON operation (tenant_id, id)
    WHERE error_code = 'internal_error';
"""

DOWNGRADE = r"""
DROP INDEX IF EXISTS ix_operation_internal_error_tenant_id_id;
DROP INDEX IF EXISTS ix_account_tenant_id_lower_name_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
