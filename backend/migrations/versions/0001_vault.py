"""The vault, sealed releases and the delivery agent's ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:16:13
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import indexer.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "agent_cursors",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_agent_cursors")),
    )
    op.create_table(
        "agent_paid_orders",
        sa.Column("order_id", indexer.models.Uint256(), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("buyer_pubkey", sa.LargeBinary(length=32), nullable=False),
        sa.Column("order_abi", sa.LargeBinary(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("paid_block", sa.BigInteger(), nullable=False),
        sa.Column("paid_tx", sa.String(length=66), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_agent_paid_orders")),
    )
    with op.batch_alter_table("agent_paid_orders", schema=None) as batch_op:
        batch_op.create_index("ix_agent_paid_orders_open", ["closed", "deadline"], unique=False)

    op.create_table(
        "vault_delivery_txs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_delivery_txs")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_vault_delivery_txs_tx_hash")),
    )
    with op.batch_alter_table("vault_delivery_txs", schema=None) as batch_op:
        batch_op.create_index("ix_vault_delivery_txs_state", ["state"], unique=False)

    op.create_table(
        "vault_meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("escrow", sa.String(length=42), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_meta")),
    )
    op.create_table(
        "vault_uploads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("tx_nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_uploads")),
    )
    with op.batch_alter_table("vault_uploads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_vault_uploads_listing_state", ["listing_id", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_vault_uploads_supplier"), ["supplier"], unique=False)

    op.create_table(
        "vault_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "upload_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("code_index", sa.BigInteger(), nullable=False),
        sa.Column("commitment", sa.LargeBinary(length=32), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(length=12), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(length=60), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["vault_uploads.id"],
            name=op.f("fk_vault_codes_upload_id_vault_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_codes")),
        sa.UniqueConstraint("listing_id", "code_index", name="uq_vault_codes_listing_index"),
        sa.UniqueConstraint("supplier", "fingerprint", name="uq_vault_codes_supplier_fingerprint"),
    )
    with op.batch_alter_table("vault_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vault_codes_upload_id"), ["upload_id"], unique=False)

    op.create_table(
        "vault_releases",
        sa.Column("order_id", indexer.models.Uint256(), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("buyer_pubkey", sa.LargeBinary(length=32), nullable=False),
        sa.Column("order_abi", sa.LargeBinary(), nullable=False),
        sa.Column("paid_block", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column(
            "delivery_tx_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_tx_id"],
            ["vault_delivery_txs.id"],
            name=op.f("fk_vault_releases_delivery_tx_id_vault_delivery_txs"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_vault_releases")),
    )
    with op.batch_alter_table("vault_releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vault_releases_buyer"), ["buyer"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_vault_releases_delivery_tx_id"), ["delivery_tx_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_vault_releases_listing_id"), ["listing_id"], unique=False
        )
        batch_op.create_index("ix_vault_releases_state", ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_vault_releases_supplier"), ["supplier"], unique=False)


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table("vault_releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vault_releases_supplier"))
        batch_op.drop_index("ix_vault_releases_state")
        batch_op.drop_index(batch_op.f("ix_vault_releases_listing_id"))
        batch_op.drop_index(batch_op.f("ix_vault_releases_delivery_tx_id"))
        batch_op.drop_index(batch_op.f("ix_vault_releases_buyer"))

    op.drop_table("vault_releases")
    with op.batch_alter_table("vault_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vault_codes_upload_id"))

    op.drop_table("vault_codes")
    with op.batch_alter_table("vault_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vault_uploads_supplier"))
        batch_op.drop_index("ix_vault_uploads_listing_state")

    op.drop_table("vault_uploads")
    op.drop_table("vault_meta")
    with op.batch_alter_table("vault_delivery_txs", schema=None) as batch_op:
        batch_op.drop_index("ix_vault_delivery_txs_state")

    op.drop_table("vault_delivery_txs")
    with op.batch_alter_table("agent_paid_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_paid_orders_open")

    op.drop_table("agent_paid_orders")
    op.drop_table("agent_cursors")
