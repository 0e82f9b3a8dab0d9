"""Resellers (分站) replace referrals: each listing's reseller price (ResellerPriceSet), the
resellers' shop prices (ShopPriceSet), and an order's reseller and cut in place of its referrer
and commission rate; the listing's and the platform's referral rates are gone.

The escrow that emits these events is a new deployment (its events and Order struct changed),
so a mirror of the old escrow is re-indexed from the new deployment block, not continued. The
upgrade still runs in place on a mirror holding rows: ``orders.referrer`` is renamed
``reseller`` (the address kept), and ``orders.referral_bps`` becomes ``reseller_cut``, an amount
(uint256), set to 0 in the rows already there (a rate has no equivalent amount); every listing
reads reseller price 0 (closed to resellers). The downgrade reverses it: the cut becomes a
referral rate of 0, and the dropped referral rates come back as 0. Pre-images in
``reorg_undo`` written before either step keep the older column names, which is one more reason
to re-index rather than continue across this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import indexer.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _uint256() -> indexer.models.Uint256:
    return indexer.models.Uint256(length=78)


def _zero(table: str, column: str) -> None:
    """Set a Uint256 column of every row to 0, in the column's stored form (a padded string on
    SQLite, as `indexer.models.Uint256` writes it, so that comparisons keep working)."""
    target = sa.table(table, sa.column(column, _uint256()))
    op.execute(target.update().values({column: 0}))


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "referrer",
            new_column_name="reseller",
            existing_type=sa.String(length=42),
            existing_nullable=False,
        )
        batch.alter_column(
            "referral_bps",
            new_column_name="reseller_cut",
            type_=_uint256(),
            existing_type=sa.Integer(),
            existing_nullable=False,
        )
    _zero("orders", "reseller_cut")
    op.drop_column("listings", "referral_bps")
    op.drop_column("platform_config", "referral_bps")
    op.add_column(
        "listings",
        sa.Column("reseller_price", _uint256(), nullable=False, server_default="0"),
    )
    _zero("listings", "reseller_price")
    op.create_table(
        "shop_prices",
        sa.Column("reseller", sa.String(length=42), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("price", _uint256(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("reseller", "listing_id", name=op.f("pk_shop_prices")),
    )


def downgrade() -> None:
    """Undo this revision (SQLite 3.35 and later drop a column in place)."""
    op.drop_table("shop_prices")
    op.drop_column("listings", "reseller_price")
    for table in ("platform_config", "listings"):
        # NOT NULL as 0001 made it: added with a default for the rows there, which then goes.
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("referral_bps", sa.Integer(), nullable=False, server_default="0")
            )
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "referral_bps",
                existing_type=sa.Integer(),
                existing_nullable=False,
                server_default=None,
            )
    _zero("orders", "reseller_cut")
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "reseller_cut",
            new_column_name="referral_bps",
            type_=sa.Integer(),
            # Uint256's form on PostgreSQL (a type decorator confuses a batch's rename).
            existing_type=sa.Numeric(78, 0),
            existing_nullable=False,
            postgresql_using="reseller_cut::integer",
        )
        batch.alter_column(
            "reseller",
            new_column_name="referrer",
            existing_type=sa.String(length=42),
            existing_nullable=False,
        )
