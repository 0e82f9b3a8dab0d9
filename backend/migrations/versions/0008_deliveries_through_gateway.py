"""Deliveries go through the chain gateway: a release links to its ``chain_txs`` row, and the
delivery agent's own transaction table (``vault_delivery_txs``) is dropped.

A release still ``sent`` in one of the old transactions goes back to ``prepared``: the agent posts
it again with the same sealed bytes. That cannot deliver an order twice (the contract accepts one
delivery per order; an order an old transaction delivered makes the new call revert in the
agent's dry run, which then finds the order delivered with this digest and confirms it). Upgrade
with no delivery in flight all the same: a transaction of the old agent still in the node's pool
holds the delivery key's next nonce, so the first new delivery waits behind it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sent_back_to_prepared() -> None:
    op.execute(sa.text("UPDATE vault_releases SET state = 'prepared' WHERE state = 'sent'"))


def upgrade() -> None:
    """Apply."""
    _sent_back_to_prepared()
    with op.batch_alter_table("vault_releases") as batch:
        batch.drop_index("ix_vault_releases_delivery_tx_id")
        batch.drop_constraint(
            "fk_vault_releases_delivery_tx_id_vault_delivery_txs", type_="foreignkey"
        )
        batch.drop_column("delivery_tx_id")
        batch.add_column(sa.Column("chain_tx_id", _PK, nullable=True))
        batch.create_foreign_key(
            "fk_vault_releases_chain_tx_id_chain_txs", "chain_txs", ["chain_tx_id"], ["id"]
        )
        batch.create_index("ix_vault_releases_chain_tx_id", ["chain_tx_id"])
    op.drop_index("ix_vault_delivery_txs_state", table_name="vault_delivery_txs")
    op.drop_table("vault_delivery_txs")


def downgrade() -> None:
    """Revert (releases in flight through the gateway go back to ``prepared``)."""
    op.create_table(
        "vault_delivery_txs",
        sa.Column("id", _PK, nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gas_price", sa.BigInteger(), nullable=True),
        sa.Column("sent_block", sa.BigInteger(), nullable=True),
        sa.Column("replaces_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vault_delivery_txs"),
        sa.UniqueConstraint("tx_hash", name="uq_vault_delivery_txs_tx_hash"),
    )
    op.create_index("ix_vault_delivery_txs_state", "vault_delivery_txs", ["state"])
    _sent_back_to_prepared()
    with op.batch_alter_table("vault_releases") as batch:
        batch.drop_index("ix_vault_releases_chain_tx_id")
        batch.drop_constraint("fk_vault_releases_chain_tx_id_chain_txs", type_="foreignkey")
        batch.drop_column("chain_tx_id")
        batch.add_column(sa.Column("delivery_tx_id", _PK, nullable=True))
        batch.create_foreign_key(
            "fk_vault_releases_delivery_tx_id_vault_delivery_txs",
            "vault_delivery_txs",
            ["delivery_tx_id"],
            ["id"],
        )
        batch.create_index("ix_vault_releases_delivery_tx_id", ["delivery_tx_id"])
