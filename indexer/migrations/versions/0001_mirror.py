"""The mirror: every escrow event in SQL (raw events, decoded tables, checkpoints, reorg undo).

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:16:05.302684
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import indexer.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "allowed_tokens",
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_allowed_tokens")),
    )
    op.create_table(
        "authorizations",
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("sku", sa.String(length=66), nullable=False),
        sa.Column("attestation_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("supplier", "sku", name=op.f("pk_authorizations")),
    )
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authorizations_block_number"), ["block_number"], unique=False
        )

    op.create_table(
        "balances",
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "token", name=op.f("pk_balances")),
    )
    op.create_table(
        "batches",
        sa.Column("listing_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("batch_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "batch_index", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_block_number"), ["block_number"], unique=False)

    op.create_table(
        "blocks",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("parent_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("has_events", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number", name=op.f("pk_blocks")),
    )
    op.create_table(
        "bonds",
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("free", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("reserved", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("supplier", "token", name=op.f("pk_bonds")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("finalized_block", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "contract", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "deliveries",
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("release_digest", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("dispute_deadline", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_deliveries")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_block_number"), ["block_number"], unique=False
        )

    op.create_table(
        "delivery_keys",
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("key", sa.String(length=42), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("supplier", "key", name=op.f("pk_delivery_keys")),
    )
    with op.batch_alter_table("delivery_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_keys_block_number"), ["block_number"], unique=False
        )

    op.create_table(
        "disputes",
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("arbitration_deadline", sa.BigInteger(), nullable=False),
        sa.Column("evidence_uri", sa.String(length=2048), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.Column("ruled", sa.Boolean(), nullable=False),
        sa.Column("arbiter", sa.String(length=42), nullable=True),
        sa.Column("buyer_bps", sa.Integer(), nullable=True),
        sa.Column("slash_bps", sa.Integer(), nullable=True),
        sa.Column("buyer_amount", indexer.models.Uint256(length=78), nullable=True),
        sa.Column("supplier_amount", indexer.models.Uint256(length=78), nullable=True),
        sa.Column("slashed", indexer.models.Uint256(length=78), nullable=True),
        sa.Column("bundle_hash", sa.String(length=66), nullable=True),
        sa.Column("reason", sa.String(length=66), nullable=True),
        sa.Column("ruled_block", sa.BigInteger(), nullable=True),
        sa.Column("ruled_tx", sa.String(length=66), nullable=True),
        sa.Column("ruled_at", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_disputes")),
    )
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disputes_arbitration_deadline"), ["arbitration_deadline"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_disputes_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_disputes_ruled"), ["ruled"], unique=False)

    op.create_table(
        "evidence",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("party", sa.String(length=42), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evidence_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_evidence_order_id"), ["order_id"], unique=False)

    op.create_table(
        "listings",
        sa.Column("listing_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("sku", sa.String(length=66), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("unit_price", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("delivery_window", sa.BigInteger(), nullable=False),
        sa.Column("dispute_window", sa.BigInteger(), nullable=False),
        sa.Column("bond_bps", sa.Integer(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("referral_bps", sa.Integer(), nullable=False),
        sa.Column("metadata_uri", sa.String(length=2048), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("committed", sa.BigInteger(), nullable=False),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_listings")),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_listings_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_listings_sku"), ["sku"], unique=False)
        batch_op.create_index(batch_op.f("ix_listings_supplier"), ["supplier"], unique=False)

    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("state_after", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_order_events_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(
            "ix_order_events_order", ["order_id", "block_number", "log_index"], unique=False
        )

    op.create_table(
        "orders",
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("supplier", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("referrer", sa.String(length=42), nullable=False),
        sa.Column("amount", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("bond", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("referral_bps", sa.Integer(), nullable=False),
        sa.Column("dispute_window", sa.BigInteger(), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("release_digest", sa.String(length=66), nullable=False),
        sa.Column("buyer_pubkey", sa.String(length=66), nullable=False),
        sa.Column("paid_block", sa.BigInteger(), nullable=False),
        sa.Column("paid_tx", sa.String(length=66), nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_buyer"), ["buyer"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_listing_id"), ["listing_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_supplier"), ["supplier"], unique=False)

    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_block_number"), ["block_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_order_id"), ["order_id"], unique=False)

    op.create_table(
        "platform_config",
        sa.Column("contract", sa.String(length=42), nullable=False),
        sa.Column("fee_recipient", sa.String(length=42), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("referral_bps", sa.Integer(), nullable=False),
        sa.Column("min_bond_bps", sa.Integer(), nullable=False),
        sa.Column("arbitration_window", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("contract", name=op.f("pk_platform_config")),
    )
    op.create_table(
        "raw_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("topics", sa.String(length=280), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_events")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "log_index", name=op.f("uq_raw_events_chain_id")
        ),
    )
    with op.batch_alter_table("raw_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_raw_events_block_number"), ["block_number"], unique=False
        )

    op.create_table(
        "reorg_undo",
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("row_key", sa.String(length=400), nullable=False),
        sa.Column("pre_image", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "block_number", "table_name", "row_key", name=op.f("pk_reorg_undo")
        ),
    )
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("to", sa.String(length=42), nullable=False),
        sa.Column("amount", indexer.models.Uint256(length=78), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
    )
    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawals_account"), ["account"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_withdrawals_block_number"), ["block_number"], unique=False
        )


def downgrade() -> None:
    """Undo this revision."""

    with op.batch_alter_table("withdrawals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawals_block_number"))
        batch_op.drop_index(batch_op.f("ix_withdrawals_account"))

    op.drop_table("withdrawals")
    op.drop_table("reorg_undo")
    with op.batch_alter_table("raw_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_raw_events_block_number"))

    op.drop_table("raw_events")
    op.drop_table("platform_config")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_order_id"))
        batch_op.drop_index(batch_op.f("ix_payouts_block_number"))
        batch_op.drop_index(batch_op.f("ix_payouts_account"))

    op.drop_table("payouts")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_supplier"))
        batch_op.drop_index(batch_op.f("ix_orders_state"))
        batch_op.drop_index(batch_op.f("ix_orders_listing_id"))
        batch_op.drop_index(batch_op.f("ix_orders_buyer"))

    op.drop_table("orders")
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.drop_index("ix_order_events_order")
        batch_op.drop_index(batch_op.f("ix_order_events_block_number"))

    op.drop_table("order_events")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_supplier"))
        batch_op.drop_index(batch_op.f("ix_listings_sku"))
        batch_op.drop_index(batch_op.f("ix_listings_block_number"))

    op.drop_table("listings")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evidence_order_id"))
        batch_op.drop_index(batch_op.f("ix_evidence_block_number"))

    op.drop_table("evidence")
    with op.batch_alter_table("disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disputes_ruled"))
        batch_op.drop_index(batch_op.f("ix_disputes_block_number"))
        batch_op.drop_index(batch_op.f("ix_disputes_arbitration_deadline"))

    op.drop_table("disputes")
    with op.batch_alter_table("delivery_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_keys_block_number"))

    op.drop_table("delivery_keys")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_block_number"))

    op.drop_table("deliveries")
    op.drop_table("checkpoints")
    op.drop_table("bonds")
    op.drop_table("blocks")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_block_number"))

    op.drop_table("batches")
    op.drop_table("balances")
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorizations_block_number"))

    op.drop_table("authorizations")
    op.drop_table("allowed_tokens")
