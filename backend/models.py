"""The backend's own tables: the code vault, sealed releases and the delivery agent's ledger.

The transactions that carry deliveries are the chain gateway's (`backend.gateway.models`,
table ``chain_txs``); a release links to the one carrying it.

They live beside the indexer's mirror (`indexer.models`) in the same database, with their own
Alembic history (version table ``alembic_version_backend``). Conventions:

- Secrets are stored only encrypted (`vault_codes.ciphertext`); commitments and fingerprints are
  raw 32-byte values; release digests and transaction hashes are 0x-prefixed lowercase hex, like
  the mirror, so the two can be joined.
- A database serves one escrow on one chain; `vault_meta` records which, and the services refuse
  another (see `backend.db.bind_escrow`).

State machines (strings, so they read well in SQL):

- ``Upload.state``: ``pending`` (codes stored, the commitBatch queued with the chain gateway
  in the same transaction, ``chain_tx_id``) -> ``committed`` (BatchCommitted seen at the
  intended first index), or ``abandoned`` (the transaction can never mine; the codes are
  deleted), or ``misplaced`` (the batch landed at another first index, see
  `backend.vault.service`).
- ``Release.state``: ``prepared`` (sealed bytes and digest stored) -> ``sent`` (inside a
  ``deliver`` intent queued with the chain gateway) -> ``confirmed`` (OrderDelivered with this
  digest is on-chain); a sent release whose transaction died goes back to ``prepared`` with the
  SAME bytes. ``superseded``: the order was delivered on-chain with another digest;
  ``abandoned``: the order can no longer be delivered (refunded, or its deadline passed).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from indexer.models import Uint256  # the mirror's exact uint256, so order ids join

#: Constraint names, as the mirror spells them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Base of the backend's tables (a metadata separate from the mirror's)."""

    metadata = MetaData(naming_convention=NAMING)


_PK = BigInteger().with_variant(Integer, "sqlite")


class VaultMeta(Base):
    """Which chain and escrow this database serves (one row)."""

    __tablename__ = "vault_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    escrow: Mapped[str] = mapped_column(String(42))


class Upload(Base):
    """One CSV upload, which becomes one committed batch on-chain."""

    __tablename__ = "vault_uploads"
    __table_args__ = (Index("ix_vault_uploads_listing_state", "listing_id", "state"),)

    id: Mapped[int] = mapped_column(_PK, primary_key=True)
    supplier: Mapped[str] = mapped_column(String(42), index=True)
    listing_id: Mapped[int] = mapped_column(BigInteger)
    first_index: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    batch_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The chain gateway's row carrying its commitBatch (a backend holding the supplier's key).
    chain_tx_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain_txs.id"), nullable=True, index=True
    )
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Code(Base):
    """One card code, encrypted at rest.

    ``ciphertext`` is AES-256-GCM(data key, nonce, salt || code, ad) where ad binds the listing and
    the index (`backend.vault.crypto`); ``wrapped_key`` is the data key encrypted under the
    master key identified by ``key_id``. ``fingerprint`` is HMAC-SHA256(fingerprint key, code),
    for duplicate detection without plaintext. ``note_sealed`` is the supplier's note sealed
    under the same data key (associated data: listing, index, "note"); ``legacy_note`` (column
    ``note``) is a plaintext note stored before migration 0004, sealed and cleared the first
    time the vault is opened with its key (`backend.vault.notes`).
    """

    __tablename__ = "vault_codes"
    __table_args__ = (
        UniqueConstraint("listing_id", "code_index", name="uq_vault_codes_listing_index"),
        UniqueConstraint("supplier", "fingerprint", name="uq_vault_codes_supplier_fingerprint"),
    )

    id: Mapped[int] = mapped_column(_PK, primary_key=True)
    upload_id: Mapped[int] = mapped_column(
        ForeignKey("vault_uploads.id", ondelete="CASCADE"), index=True
    )
    supplier: Mapped[str] = mapped_column(String(42))
    listing_id: Mapped[int] = mapped_column(BigInteger)
    code_index: Mapped[int] = mapped_column(BigInteger)
    commitment: Mapped[bytes] = mapped_column(LargeBinary(32))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(60))
    key_id: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    legacy_note: Mapped[str | None] = mapped_column("note", String(500), nullable=True)
    note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(12), default="staged")  # staged | stock | released

    def __repr__(self) -> str:
        return (
            f"Code(listing_id={self.listing_id}, code_index={self.code_index}, "
            f"state={self.state!r}, ciphertext=<{len(self.ciphertext or b'')} bytes>)"
        )


class Release(Base):
    """The sealed release of one order: exactly the bytes whose keccak256 goes on-chain.

    ``order_abi`` is the order as stored on-chain when paid (``abi.encode(Order)``), so the agent
    can post it without asking anyone. ``manifest`` is JSON: per code its index, commitment,
    batch index, batch root and Merkle proof (all public; salts travel inside the sealed box).
    """

    __tablename__ = "vault_releases"
    __table_args__ = (Index("ix_vault_releases_state", "state"),)

    order_id: Mapped[int] = mapped_column(Uint256, primary_key=True)
    listing_id: Mapped[int] = mapped_column(BigInteger, index=True)
    first_index: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    buyer: Mapped[str] = mapped_column(String(42), index=True)
    supplier: Mapped[str] = mapped_column(String(42), index=True)
    buyer_pubkey: Mapped[bytes] = mapped_column(LargeBinary(32))
    order_abi: Mapped[bytes] = mapped_column(LargeBinary)
    paid_block: Mapped[int] = mapped_column(BigInteger)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(66))
    manifest: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), default="prepared")
    #: The gateway's intent (``chain_txs``) carrying it while ``sent``.
    chain_tx_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain_txs.id"), nullable=True, index=True
    )
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class AgentCursor(Base):
    """How far the chain-log order source has read (`backend.delivery.sources`)."""

    __tablename__ = "agent_cursors"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)


class AgentPaidOrder(Base):
    """A paid order the chain-log source found, kept until it is closed on-chain.

    Written in the same transaction as the cursor, so a crash never loses one.
    """

    __tablename__ = "agent_paid_orders"
    __table_args__ = (Index("ix_agent_paid_orders_open", "closed", "deadline"),)

    order_id: Mapped[int] = mapped_column(Uint256, primary_key=True)
    listing_id: Mapped[int] = mapped_column(BigInteger)
    supplier: Mapped[str] = mapped_column(String(42))
    buyer_pubkey: Mapped[bytes] = mapped_column(LargeBinary(32))
    order_abi: Mapped[bytes] = mapped_column(LargeBinary)
    deadline: Mapped[int] = mapped_column(BigInteger)
    paid_block: Mapped[int] = mapped_column(BigInteger)
    paid_tx: Mapped[str] = mapped_column(String(66))
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class AttestationDocument(Base):
    """A rights holder's attestation document, kept so that anyone can check a licence.

    The escrow records only the document's keccak256 (`SkuAuthorized.attestationHash`); the
    document itself is published here by whoever holds it, and accepted only when its bytes hash
    to an attestation a licence cites (`backend.attestations`). So it needs no sign-in and
    cannot be forged: a reader recomputes the hash and compares it with the chain.
    """

    __tablename__ = "attestation_documents"

    hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    supplier: Mapped[str] = mapped_column(String(42))
    sku: Mapped[str] = mapped_column(String(66))
    kept_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShopName(Base):
    """A reseller's shop name (分站 name), for links such as ``/#/s/NAME``.

    A shop is an address on-chain (`setShopPrice`); its name is a convenience this platform
    keeps, claimed by the signed-in wallet: one name per address, first come first served. The
    address link works without it, so nothing is lost if the platform is gone.
    """

    __tablename__ = "shop_names"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    reseller: Mapped[str] = mapped_column(String(42), unique=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
