"""The gateway's table, ``chain_txs`` (backend migration 0007)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.models import Base, utcnow
from indexer.models import Uint256

_PK = BigInteger().with_variant(Integer, "sqlite")


class TxState(enum.StrEnum):
    """Where an intent is.

    ``queued`` (not signed yet) → ``signed`` (bytes stored, maybe not broadcast) → ``sent`` →
    ``mined`` (succeeded) or ``reverted`` (mined, failed); ``failed`` (would revert: never
    signed, no nonce spent); ``dropped`` (signed, but its nonce was used by another transaction
    of the same sender, so it can never mine: the caller decides whether to queue it again).
    """

    QUEUED = "queued"
    SIGNED = "signed"
    SENT = "sent"
    MINED = "mined"
    REVERTED = "reverted"
    FAILED = "failed"
    DROPPED = "dropped"


#: States that are over.
FINAL = (TxState.MINED, TxState.REVERTED, TxState.FAILED, TxState.DROPPED)
#: States that hold a nonce and may still mine.
IN_FLIGHT = (TxState.SIGNED, TxState.SENT)


class ChainTx(Base):
    """One intent and the transaction that carries it out."""

    __tablename__ = "chain_txs"

    id: Mapped[int] = mapped_column(_PK, primary_key=True)
    intent: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    #: What it is about (order ids, comma-separated), for callers that must not repeat work.
    subjects: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(42), index=True)
    to_address: Mapped[str] = mapped_column(String(42))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[int] = mapped_column(Uint256, default=0)
    state: Mapped[str] = mapped_column(String(12), default=TxState.QUEUED, index=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    gas_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_fee: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    priority_fee: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    #: Every hash this intent was sent under (replacements), comma-separated.
    hashes: Mapped[str] = mapped_column(Text, default="")
    sent_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


__all__ = ["FINAL", "IN_FLIGHT", "ChainTx", "TxState"]
