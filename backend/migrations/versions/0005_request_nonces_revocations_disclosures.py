"""Signed requests' single-use nonces, session revocations, and the record of disclosures.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply (each table is skipped if an app already made it with `ensure_tables`)."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "request_nonces" not in existing:
        op.create_table(
            "request_nonces",
            sa.Column("nonce", sa.String(length=64), primary_key=True),
            sa.Column("address", sa.String(length=42), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
        )
        op.create_index("ix_request_nonces_expires_at", "request_nonces", ["expires_at"])
    if "auth_revocations" not in existing:
        op.create_table(
            "auth_revocations",
            sa.Column("key", sa.String(length=80), primary_key=True),
            sa.Column("revoked_ms", sa.BigInteger(), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
        )
        op.create_index("ix_auth_revocations_expires_at", "auth_revocations", ["expires_at"])
    if "evidence_disclosures" not in existing:
        op.create_table(
            "evidence_disclosures",
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("order_id", sa.String(length=78), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("actor", sa.String(length=42), nullable=False),
            sa.Column("codes", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_evidence_disclosures_order_id", "evidence_disclosures", ["order_id"])


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_evidence_disclosures_order_id", table_name="evidence_disclosures")
    op.drop_table("evidence_disclosures")
    op.drop_index("ix_auth_revocations_expires_at", table_name="auth_revocations")
    op.drop_table("auth_revocations")
    op.drop_index("ix_request_nonces_expires_at", table_name="request_nonces")
    op.drop_table("request_nonces")
