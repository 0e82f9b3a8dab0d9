"""On-chain delivery (issue 16): each listing's ``onChainFrom`` (OnChainReleaseRequired) and
whether an order's sealed release was published on-chain (ReleasePublished).

Plain ``ADD COLUMN`` with a server default, on SQLite as on PostgreSQL: existing rows read 0 and
false, which is right for every event mirrored before this revision (neither event existed).
No batch mode: on SQLite it copies the table, and a copy is neither needed nor free here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "listings",
        sa.Column("on_chain_from", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column(
        "orders",
        sa.Column("release_on_chain", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Undo this revision (SQLite 3.35 and later drop a column in place)."""
    op.drop_column("orders", "release_on_chain")
    op.drop_column("listings", "on_chain_from")
