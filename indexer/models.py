"""The SQL mirror of the escrow: the schema the indexer writes and the backend reads.

Conventions:
- Addresses are checksummed strings; hashes and bytes32 values are 0x-prefixed lowercase hex.
- uint256 amounts use `Uint256`: NUMERIC(78, 0) on PostgreSQL, and on SQLite a zero-padded
  decimal string (so equality and ordering still work and nothing is rounded through a float).
- Every decoded row points back to the log it came from (block number, tx hash, log index), so
  a dispute handler can cite it and anyone can check it against the chain.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Uint256(TypeDecorator[int]):
    """An unsigned 256-bit integer, exact on both PostgreSQL and SQLite."""

    impl = String(78)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """NUMERIC(78,0) on PostgreSQL, a padded string elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(78))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        """Python int to the column's form."""
        if value is None:
            return None
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(int(value)).zfill(78)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:  # noqa: ARG002
        """The column's form to a Python int."""
        if value is None:
            return None
        return int(value)


class Base(DeclarativeBase):
    """Base of the mirror's tables."""

    metadata = MetaData(naming_convention=NAMING)


class LogRef:
    """Columns that cite the log a row came from."""

    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------- ingestion bookkeeping


class RawEvent(Base):
    """One row per escrow log, exactly as fetched. The decoded tables derive from these."""

    __tablename__ = "raw_events"
    __table_args__ = (UniqueConstraint("chain_id", "block_hash", "log_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    block_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
    address: Mapped[str] = mapped_column(String(42))
    name: Mapped[str] = mapped_column(String(40))
    topics: Mapped[str] = mapped_column(String(280))  # topics as 0x hex, comma-separated
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Block(Base):
    """Blocks the indexer has applied: hashes for reorg checks, timestamps for deadlines."""

    __tablename__ = "blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    #: Whether the block holds escrow logs. Blocks without any are kept only while they can
    #: still be reorganised away (and the checkpoint's block), then pruned.
    has_events: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Checkpoint(Base):
    """How far the mirror goes: written in the same transaction as the rows it covers."""

    __tablename__ = "checkpoints"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract: Mapped[str] = mapped_column(String(42), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    #: The highest block the mirror treats as final: it can roll back to this block, not below.
    finalized_block: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ReorgUndo(Base):
    """Pre-images of latest-value rows changed by blocks that can still be reorganised away.

    One row per (block, table, key): the row as it was before that block first touched it
    (`pre_image` null when the block created it). Rolling back to block B restores, for each key,
    the pre-image of the lowest block above B. Rows at or below the finalized block are pruned.
    """

    __tablename__ = "reorg_undo"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    table_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    row_key: Mapped[str] = mapped_column(String(400), primary_key=True)  # JSON list of key values
    pre_image: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object of the row


# ---------------------------------------------------------------- platform


class PlatformConfig(Base):
    """The escrow's Config, latest value."""

    __tablename__ = "platform_config"

    contract: Mapped[str] = mapped_column(String(42), primary_key=True)
    fee_recipient: Mapped[str] = mapped_column(String(42))
    fee_bps: Mapped[int] = mapped_column(Integer)
    min_bond_bps: Mapped[int] = mapped_column(Integer)
    arbitration_window: Mapped[int] = mapped_column(BigInteger)
    min_delivery_window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_delivery_window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_dispute_window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_dispute_window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_number: Mapped[int] = mapped_column(BigInteger)


class AllowedToken(Base):
    """ERC-20 payment tokens the operator allowed (or disallowed)."""

    __tablename__ = "allowed_tokens"

    token: Mapped[str] = mapped_column(String(42), primary_key=True)
    allowed: Mapped[bool] = mapped_column(Boolean)
    block_number: Mapped[int] = mapped_column(BigInteger)


class Authorization(Base, LogRef):
    """The licensed-product whitelist: (supplier, sku) and the attestation hash (zero = revoked)."""

    __tablename__ = "authorizations"

    supplier: Mapped[str] = mapped_column(String(42), primary_key=True)
    sku: Mapped[str] = mapped_column(String(66), primary_key=True)
    attestation_hash: Mapped[str] = mapped_column(String(66))


class DeliveryKey(Base, LogRef):
    """Keys a supplier named to deliver its orders."""

    __tablename__ = "delivery_keys"

    supplier: Mapped[str] = mapped_column(String(42), primary_key=True)
    key: Mapped[str] = mapped_column(String(42), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


# ---------------------------------------------------------------- listings


class Listing(Base, LogRef):
    """A listing, as of its latest event. `LogRef` cites the ListingCreated log."""

    __tablename__ = "listings"

    listing_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    supplier: Mapped[str] = mapped_column(String(42), index=True)
    sku: Mapped[str] = mapped_column(String(66), index=True)
    token: Mapped[str] = mapped_column(String(42))
    unit_price: Mapped[int] = mapped_column(Uint256)
    delivery_window: Mapped[int] = mapped_column(BigInteger)
    dispute_window: Mapped[int] = mapped_column(BigInteger)
    #: Fixed when the listing is created (null in rows mirrored before migration 0002).
    arbitration_window: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bond_bps: Mapped[int] = mapped_column(Integer)
    fee_bps: Mapped[int] = mapped_column(Integer)
    metadata_uri: Mapped[str] = mapped_column(String(2048))
    active: Mapped[bool] = mapped_column(Boolean)
    committed: Mapped[int] = mapped_column(BigInteger, default=0)
    sold: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The contract's ``onChainFrom``: 0, or 1 + the first code index whose orders must be
    #: delivered on-chain (`deliverOnChain`), set once by OnChainReleaseRequired (migration 0004).
    on_chain_from: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The contract's ``resellerPrice``: what the supplier receives a unit from a sale in a
    #: reseller's shop, or 0 while the listing is closed to resellers (ResellerPriceSet,
    #: migration 0005).
    reseller_price: Mapped[int] = mapped_column(Uint256, default=0, server_default="0")
    #: The contract's packed ``_tiers`` word: the listing's volume tiers (TiersSet, migration
    #: 0006; `contracts.storage.decode_tiers` unpacks it), 0 for none.
    tiers: Mapped[int] = mapped_column(Uint256, default=0, server_default="0")
    updated_block: Mapped[int] = mapped_column(BigInteger)


class ShopPrice(Base):
    """A listing in a reseller's shop (分站): the unit price its buyers pay, latest value
    (ShopPriceSet, migration 0005). A reseller that takes the listing out leaves its row with
    price 0, as the contract's mapping does; readers show only nonzero prices."""

    __tablename__ = "shop_prices"

    reseller: Mapped[str] = mapped_column(String(42), primary_key=True)
    listing_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    price: Mapped[int] = mapped_column(Uint256)
    updated_block: Mapped[int] = mapped_column(BigInteger)


class Batch(Base, LogRef):
    """A committed batch of codes: its Merkle root and the index range it covers."""

    __tablename__ = "batches"

    listing_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root: Mapped[str] = mapped_column(String(66))
    first_index: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------- orders


class Order(Base):
    """An order's current state: every field of the contract's Order struct and more."""

    __tablename__ = "orders"
    #: The keeper's query: orders in a state whose deadline has passed, oldest first.
    __table_args__ = (Index("ix_orders_state_deadline", "state", "deadline"),)

    order_id: Mapped[int] = mapped_column(Uint256, primary_key=True)
    listing_id: Mapped[int] = mapped_column(BigInteger, index=True)
    first_index: Mapped[int] = mapped_column(BigInteger)
    buyer: Mapped[str] = mapped_column(String(42), index=True)
    supplier: Mapped[str] = mapped_column(String(42), index=True)
    token: Mapped[str] = mapped_column(String(42))
    #: The shop the order was bought in, or the zero address (bought at the listing's price).
    reseller: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(Uint256)
    bond: Mapped[int] = mapped_column(Uint256)
    quantity: Mapped[int] = mapped_column(BigInteger)
    fee_bps: Mapped[int] = mapped_column(Integer)
    #: The reseller's margin in the amount, ``(shopPrice - resellerPrice) * quantity`` (0
    #: without a reseller); its commission is this less its share of the fee.
    reseller_cut: Mapped[int] = mapped_column(Uint256)
    dispute_window: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[int] = mapped_column(Integer, index=True)  # contracts.encoding.OrderState
    release_digest: Mapped[str] = mapped_column(String(66))
    #: Whether the sealed release was published in the delivery transaction (ReleasePublished,
    #: `deliverOnChain`): the buyer can then read it from the chain alone (migration 0004).
    release_on_chain: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    buyer_pubkey: Mapped[str] = mapped_column(String(66))
    paid_block: Mapped[int] = mapped_column(BigInteger)
    paid_tx: Mapped[str] = mapped_column(String(66))
    paid_at: Mapped[int] = mapped_column(BigInteger)
    updated_block: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class OrderEvent(Base, LogRef):
    """An order's full history: one row per event that touched it."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "block_number", "log_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(Uint256)
    name: Mapped[str] = mapped_column(String(40))
    state_after: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class Delivery(Base, LogRef):
    """A delivery: the digest of the sealed release and the dispute deadline it opened."""

    __tablename__ = "deliveries"

    order_id: Mapped[int] = mapped_column(Uint256, primary_key=True)
    release_digest: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    dispute_deadline: Mapped[int] = mapped_column(BigInteger)


class Dispute(Base, LogRef):
    """A dispute and, once given, its ruling. `LogRef` cites the DisputeOpened log."""

    __tablename__ = "disputes"

    order_id: Mapped[int] = mapped_column(Uint256, primary_key=True)
    opened_at: Mapped[int] = mapped_column(BigInteger)
    arbitration_deadline: Mapped[int] = mapped_column(BigInteger, index=True)
    evidence_uri: Mapped[str] = mapped_column(String(2048))
    evidence_hash: Mapped[str] = mapped_column(String(66))
    ruled: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    arbiter: Mapped[str | None] = mapped_column(String(42), nullable=True)
    buyer_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slash_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    buyer_amount: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    supplier_amount: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    slashed: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    bundle_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(66), nullable=True)
    ruled_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ruled_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    ruled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Evidence(Base, LogRef):
    """Evidence submitted to a dispute (EvidenceAdded and the opening evidence)."""

    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(Uint256, index=True)
    party: Mapped[str] = mapped_column(String(42))
    uri: Mapped[str] = mapped_column(String(2048))
    evidence_hash: Mapped[str] = mapped_column(String(66))


# ---------------------------------------------------------------- money


class Bond(Base):
    """A supplier's bond in one token."""

    __tablename__ = "bonds"

    supplier: Mapped[str] = mapped_column(String(42), primary_key=True)
    token: Mapped[str] = mapped_column(String(42), primary_key=True)
    free: Mapped[int] = mapped_column(Uint256)
    reserved: Mapped[int] = mapped_column(Uint256)
    updated_block: Mapped[int] = mapped_column(BigInteger)


class Payout(Base, LogRef):
    """A credit to a withdrawable balance (kind: supplier, fee, commission, refund, ruling_buyer,
    ruling_supplier, slash, timeout_buyer, timeout_supplier), derived from the order's events."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(Uint256, index=True)
    account: Mapped[str] = mapped_column(String(42), index=True)  # the escrow address for fees
    token: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(Uint256)
    kind: Mapped[str] = mapped_column(String(20))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class Balance(Base):
    """An account's withdrawable balance: payouts minus withdrawals."""

    __tablename__ = "balances"

    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    token: Mapped[str] = mapped_column(String(42), primary_key=True)
    amount: Mapped[int] = mapped_column(Uint256)
    updated_block: Mapped[int] = mapped_column(BigInteger)


class Withdrawal(Base, LogRef):
    """A withdrawal of a balance, of bond, or of platform fees (kind: balance, bond, fees)."""

    __tablename__ = "withdrawals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account: Mapped[str] = mapped_column(String(42), index=True)
    token: Mapped[str] = mapped_column(String(42))
    to: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(Uint256)
    kind: Mapped[str] = mapped_column(String(10))
    timestamp: Mapped[int] = mapped_column(BigInteger)
