"""Delivery transactions record their gas price, when they were broadcast and what they replace,
so the agent can replace one stuck in the pool at a higher gas price.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("gas_price", "sent_block", "replaces_id")


def upgrade() -> None:
    """Apply."""
    for name in _COLUMNS:
        op.add_column("vault_delivery_txs", sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table("vault_delivery_txs") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
