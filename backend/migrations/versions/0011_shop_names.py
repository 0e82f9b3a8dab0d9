"""Shop names: a reseller's name for its shop's link (``/#/s/NAME``), one per address.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "shop_names",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("reseller", sa.String(length=42), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shop_names")),
        sa.UniqueConstraint("reseller", name=op.f("uq_shop_names_reseller")),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table("shop_names")
