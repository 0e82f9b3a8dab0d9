"""The vault recognises its master key, and suppliers' notes are sealed at rest (issue 19,
finding 5).

- ``vault_keys``: one row naming the master key the vault is written with (its public key id
  and an HMAC check value, `backend.vault.master`). It is created empty: the first start-up
  with a key fills it, after checking the records already stored (`open_vault`).
- ``vault_codes.note_sealed``: the note sealed under the code record's data key
  (`backend.vault.notes`). The plaintext column ``note`` stays, because this migration runs
  without the master key and so cannot seal what is in it: the app seals and clears those notes
  the first time it opens the vault with its key. New uploads never write it.

Downgrading drops the sealed notes, which the old schema cannot hold, so it refuses while any
exists.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "vault_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("key_check", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_keys")),
    )
    op.add_column("vault_codes", sa.Column("note_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Revert (refused while a sealed note exists: it would be lost)."""
    sealed = op.get_bind().execute(
        sa.text("SELECT COUNT(*) FROM vault_codes WHERE note_sealed IS NOT NULL")
    )
    if sealed.scalar_one():
        raise RuntimeError(
            "vault_codes holds sealed notes, which revision 0003 cannot store; downgrading would "
            "lose them. Restore a backup taken before upgrading instead"
        )
    with op.batch_alter_table("vault_codes") as batch:
        batch.drop_column("note_sealed")
    op.drop_table("vault_keys")
