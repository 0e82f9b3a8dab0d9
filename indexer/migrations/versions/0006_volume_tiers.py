"""Volume tiers (批发价, issue 15): each listing's tiers as the escrow packs them (TiersSet).

One ``uint256`` column, ``listings.tiers``, holding the contract's packed ``_tiers`` word (tier
i in bits [48i, 48i + 48): its minimum quantity above its discount in basis points; see
`contracts.storage.decode_tiers`). Existing rows read 0, no tiers, which is right for every event
mirrored before this revision (TiersSet did not exist).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import indexer.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    column = indexer.models.Uint256(length=78)
    op.add_column("listings", sa.Column("tiers", column, nullable=False, server_default="0"))
    # 0 in the column's stored form (a padded string on SQLite), as the models write it.
    listings = sa.table("listings", sa.column("tiers", column))
    op.execute(listings.update().values(tiers=0))


def downgrade() -> None:
    """Undo this revision (SQLite 3.35 and later drop a column in place)."""
    op.drop_column("listings", "tiers")
