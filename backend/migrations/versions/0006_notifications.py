"""Notifications: endpoints, the outbox, the producer's cursor, low-stock flags.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "notify_endpoints",
        sa.Column("id", _PK, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(length=42), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.String(length=1024), nullable=False),
        sa.Column("as_arbiter", sa.Boolean(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notify_endpoints_owner", "notify_endpoints", ["owner"])
    op.create_index("ix_notify_endpoints_active", "notify_endpoints", ["active"])
    op.create_table(
        "notify_outbox",
        sa.Column("id", _PK, primary_key=True, autoincrement=True),
        sa.Column(
            "endpoint_id",
            _PK,
            sa.ForeignKey("notify_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.UniqueConstraint("endpoint_id", "dedupe_key", name="uq_notify_outbox_key"),
    )
    op.create_index("ix_notify_outbox_endpoint_id", "notify_outbox", ["endpoint_id"])
    op.create_index("ix_notify_outbox_state", "notify_outbox", ["state"])
    op.create_index("ix_notify_outbox_next_attempt_at", "notify_outbox", ["next_attempt_at"])
    op.create_table(
        "notify_cursor",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "notify_stock",
        sa.Column("listing_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("low", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table("notify_stock")
    op.drop_table("notify_cursor")
    op.drop_index("ix_notify_outbox_next_attempt_at", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_state", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_endpoint_id", table_name="notify_outbox")
    op.drop_table("notify_outbox")
    op.drop_index("ix_notify_endpoints_active", table_name="notify_endpoints")
    op.drop_index("ix_notify_endpoints_owner", table_name="notify_endpoints")
    op.drop_table("notify_endpoints")
