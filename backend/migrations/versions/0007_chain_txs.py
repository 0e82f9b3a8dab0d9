"""The chain gateway's table: one row per intent and the transaction carrying it out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from indexer.models import Uint256

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "chain_txs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("intent", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False, unique=True),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("value", Uint256(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("gas_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_fee", Uint256(), nullable=True),
        sa.Column("priority_fee", Uint256(), nullable=True),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("hashes", sa.Text(), nullable=False),
        sa.Column("sent_block", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_chain_txs_intent", "chain_txs", ["intent"])
    op.create_index("ix_chain_txs_sender", "chain_txs", ["sender"])
    op.create_index("ix_chain_txs_state", "chain_txs", ["state"])


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_chain_txs_state", table_name="chain_txs")
    op.drop_index("ix_chain_txs_sender", table_name="chain_txs")
    op.drop_index("ix_chain_txs_intent", table_name="chain_txs")
    op.drop_table("chain_txs")
