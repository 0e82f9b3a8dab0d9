"""Uploads commit through the chain gateway: an upload links to the ``chain_txs`` row carrying its
commitBatch, and the vault's own copy of the signed bytes (``tx_nonce``, ``raw_tx``) is dropped.

A ``pending`` upload that holds signed bytes from before the upgrade becomes a gateway row in
state ``signed`` with those very bytes, so the gateway sends them again (a node that has them
says so) and follows them: nothing in flight is lost, and no batch can be committed twice. Those
legacy transactions carry a gas price, not EIP-1559 fees, so the gateway does not replace them;
if one can never mine, the upload is queued again or abandoned as any other.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from eth_abi import encode as abi_encode
from eth_utils import keccak

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COMMIT = keccak(text="commitBatch(uint256,bytes32,uint32,uint32)")[:4]


def _carry_signed_uploads_over() -> None:
    conn = op.get_bind()
    escrow = conn.execute(sa.text("SELECT escrow FROM vault_meta")).scalar()
    rows = conn.execute(
        sa.text(
            "SELECT id, supplier, listing_id, root, count, first_index, tx_nonce, tx_hash, raw_tx"
            " FROM vault_uploads WHERE state = 'pending' AND raw_tx IS NOT NULL"
        )
    ).all()
    now = datetime.now(UTC)
    for row in rows:
        up = row._mapping
        data = _COMMIT + abi_encode(
            ["uint256", "bytes32", "uint32", "uint32"],
            [int(up["listing_id"]), bytes(up["root"]), int(up["count"]), int(up["first_index"])],
        )
        new_id = conn.execute(
            sa.text(
                "INSERT INTO chain_txs (intent, key, subjects, sender, to_address, data, value,"
                " state, nonce, raw_tx, tx_hash, hashes, created_at, updated_at) VALUES"
                " ('commit', :key, :subjects, :sender, :to, :data, 0, 'signed', :nonce, :raw,"
                " :hash, :hashes, :now, :now) RETURNING id"
            ),
            {
                "key": f"upload:{up['id']}",
                "subjects": str(up["id"]),
                "sender": up["supplier"],
                "to": escrow,
                "data": data,
                "nonce": up["tx_nonce"],
                "raw": bytes(up["raw_tx"]),
                "hash": up["tx_hash"],
                "hashes": up["tx_hash"],
                "now": now,
            },
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE vault_uploads SET chain_tx_id = :c WHERE id = :u"),
            {"c": new_id, "u": up["id"]},
        )


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


# On SQLite, batch mode would copy ``vault_uploads`` and drop the original, and dropping it
# cascades to every code (``vault_codes.upload_id`` is ON DELETE CASCADE, foreign keys on): so
# SQLite's own ALTER TABLE ADD/DROP COLUMN is used (3.35 and later), which touches no row.


def upgrade() -> None:
    """Apply."""
    if _sqlite():
        op.execute(
            "ALTER TABLE vault_uploads ADD COLUMN chain_tx_id INTEGER"
            " CONSTRAINT fk_vault_uploads_chain_tx_id_chain_txs REFERENCES chain_txs (id)"
        )
    else:
        op.add_column("vault_uploads", sa.Column("chain_tx_id", _PK, nullable=True))
        op.create_foreign_key(
            "fk_vault_uploads_chain_tx_id_chain_txs",
            "vault_uploads",
            "chain_txs",
            ["chain_tx_id"],
            ["id"],
        )
    op.create_index("ix_vault_uploads_chain_tx_id", "vault_uploads", ["chain_tx_id"])
    _carry_signed_uploads_over()
    for column in ("tx_nonce", "raw_tx"):
        if _sqlite():
            op.execute(f"ALTER TABLE vault_uploads DROP COLUMN {column}")
        else:
            op.drop_column("vault_uploads", column)


def downgrade() -> None:
    """Revert (a pending upload takes its gateway row's signed bytes back)."""
    op.add_column("vault_uploads", sa.Column("tx_nonce", sa.BigInteger(), nullable=True))
    op.add_column("vault_uploads", sa.Column("raw_tx", sa.LargeBinary(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE vault_uploads SET tx_nonce = (SELECT nonce FROM chain_txs WHERE"
            " chain_txs.id = vault_uploads.chain_tx_id), raw_tx = (SELECT raw_tx FROM chain_txs"
            " WHERE chain_txs.id = vault_uploads.chain_tx_id) WHERE state = 'pending'"
        )
    )
    op.drop_index("ix_vault_uploads_chain_tx_id", table_name="vault_uploads")
    if _sqlite():
        # SQLite cannot drop a column a constraint names without copying the table (which would
        # cascade to the codes): the column stays, unused, on a downgraded SQLite database.
        return
    op.drop_constraint(
        "fk_vault_uploads_chain_tx_id_chain_txs", "vault_uploads", type_="foreignkey"
    )
    op.drop_column("vault_uploads", "chain_tx_id")
