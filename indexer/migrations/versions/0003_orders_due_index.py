"""An index on orders by (state, deadline): the keeper finds delivered orders whose dispute
window has closed without scanning every delivered order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_orders_state_deadline", "orders", ["state", "deadline"])


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index("ix_orders_state_deadline", table_name="orders")
