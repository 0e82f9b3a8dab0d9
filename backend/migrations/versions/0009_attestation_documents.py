"""Attestation documents: the rights holder's document behind a licence, kept by its keccak256
so that the public store can show it and a buyer can check it against the chain.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "attestation_documents",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("sku", sa.String(length=66), nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_attestation_documents")),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table("attestation_documents")
