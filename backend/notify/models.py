"""The notification tables (backend migration 0006), on the backend's metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.models import Base, utcnow

_PK = BigInteger().with_variant(Integer, "sqlite")

#: Outbox states.
PENDING, SENT, DEAD = "pending", "sent", "dead"


class Endpoint(Base):
    """Where one wallet wants to be told: a webhook URL or an email address, and for what."""

    __tablename__ = "notify_endpoints"

    id: Mapped[int] = mapped_column(_PK, primary_key=True)
    owner: Mapped[str] = mapped_column(String(42), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # webhook | email
    target: Mapped[str] = mapped_column(String(2048))
    #: Event types, comma-separated, or ``*`` for all.
    events: Mapped[str] = mapped_column(String(1024), default="*")
    #: Whether the owner held ARBITER_ROLE when subscribing (arbiters' events go to these).
    as_arbiter: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The webhook's signing secret, sealed under a key derived from the master key.
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def wants(self, event_type: str) -> bool:
        """Whether this endpoint subscribed to `event_type`."""
        return self.events == "*" or event_type in self.events.split(",")


class OutboxMessage(Base):
    """One message to one endpoint. Its id is the ``webhook-id``, stable across retries."""

    __tablename__ = "notify_outbox"
    __table_args__ = (UniqueConstraint("endpoint_id", "dedupe_key", name="uq_notify_outbox_key"),)

    id: Mapped[int] = mapped_column(_PK, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("notify_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    #: What caused it (an event row, a deadline), so that a cause is told once per endpoint.
    dedupe_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(8), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Unix time of the next attempt (also the lease of a dispatcher that took it).
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)


class NotifyCursor(Base):
    """How far the producer has read the mirror's order history (``order_events.id``)."""

    __tablename__ = "notify_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class StockFlag(Base):
    """Whether a listing's stock is at or below its threshold (a low-stock alert fires once
    per crossing)."""

    __tablename__ = "notify_stock"

    listing_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    low: Mapped[bool] = mapped_column(Boolean, default=False)
    threshold: Mapped[int] = mapped_column(Integer, default=20)


__all__ = ["DEAD", "PENDING", "SENT", "Endpoint", "NotifyCursor", "OutboxMessage", "StockFlag"]
