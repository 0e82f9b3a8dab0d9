"""Terms the audit fixes added to the contract: each listing's arbitration window and the
configuration's bounds on delivery and dispute windows.

Nullable, so that a mirror built before this revision upgrades in place; rows written from then on
always carry them (re-index from the deployment block to fill older rows).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BOUNDS = ("min_delivery_window", "max_delivery_window", "min_dispute_window", "max_dispute_window")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("listings") as batch:
        batch.add_column(sa.Column("arbitration_window", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("platform_config") as batch:
        for name in _BOUNDS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("platform_config") as batch:
        for name in _BOUNDS:
            batch.drop_column(name)
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("arbitration_window")
