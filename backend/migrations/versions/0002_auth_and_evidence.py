"""SIWE nonces and the parties' evidence additions, under the backend's migration history.

Both tables were first created on demand by `backend.auth.ensure_tables` and
`backend.evidence.store.ensure_tables`; this revision makes them part of the schema, and skips
a table that an older database already has.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "auth_nonces" not in existing:
        op.create_table(
            "auth_nonces",
            sa.Column("nonce", sa.String(length=64), primary_key=True),
            sa.Column("issued_at", sa.BigInteger(), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
            sa.Column("used_at", sa.BigInteger(), nullable=True),
            sa.Column("used_by", sa.String(length=42), nullable=True),
        )
        op.create_index("ix_auth_nonces_expires_at", "auth_nonces", ["expires_at"])
    if "evidence_additions" not in existing:
        op.create_table(
            "evidence_additions",
            sa.Column("order_id", sa.String(length=78), nullable=False),
            sa.Column("party", sa.String(length=8), nullable=False),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
            sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("order_id", "party"),
        )


def downgrade() -> None:
    """Revert."""
    op.drop_table("evidence_additions")
    op.drop_index("ix_auth_nonces_expires_at", table_name="auth_nonces")
    op.drop_table("auth_nonces")
