"""The parties' additions to an order's evidence, kept encrypted beside the backend's tables.

A buyer adds its per-order X25519 secret (it opens that order's release and nothing else); a
supplier adds the salts and plaintext codes it says it sent. Both are secrets until the arbiter
reads them, so they are stored AES-256-GCM encrypted under a key derived from the master key
(``HMAC-SHA256(master key, "kameng.evidence.additions.v1")``), with the order id and the party
as associated data. The table ``evidence_additions`` is created by the backend's migration
0002 (`ensure_tables` stays as a no-op safety net for an app started without migrating).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import DateTime, LargeBinary, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import EvidenceError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

PARTIES = ("buyer", "supplier")


class Base(DeclarativeBase):
    """Base of the evidence tables (own metadata)."""

    metadata = MetaData()


class Addition(Base):
    """One party's addition to one order's evidence (the latest one replaces the earlier)."""

    __tablename__ = "evidence_additions"

    order_id: Mapped[str] = mapped_column(String(78), primary_key=True)
    party: Mapped[str] = mapped_column(String(8), primary_key=True)
    address: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Addition(order_id={self.order_id}, party={self.party!r}, address={self.address})"


def ensure_tables(engine: Engine) -> None:
    """Create the evidence tables if they are missing (idempotent)."""
    Base.metadata.create_all(engine, checkfirst=True)


class AdditionsStore:
    """Reads and writes the parties' additions, encrypted at rest."""

    def __init__(self, master_key: bytes) -> None:
        """Derive the additions key from the backend's master key."""
        key = hmac.new(master_key, b"kameng.evidence.additions.v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "AdditionsStore(<key hidden>)"

    def _put(self, session: Session, order_id: int, party: str, address: str, data: bytes) -> None:
        nonce = os.urandom(12)
        ad = f"{order_id}:{party}".encode()
        row = session.get(Addition, (str(order_id), party))
        if row is None:
            row = Addition(order_id=str(order_id), party=party)
            session.add(row)
        row.address = address
        row.nonce = nonce
        row.ciphertext = self._aead.encrypt(nonce, data, ad)
        row.created_at = datetime.now(UTC)

    def _get(self, session: Session, order_id: int, party: str) -> bytes | None:
        row = session.get(Addition, (str(order_id), party))
        if row is None:
            return None
        try:
            return self._aead.decrypt(row.nonce, row.ciphertext, f"{order_id}:{party}".encode())
        except InvalidTag as exc:
            raise EvidenceError(
                f"the {party}'s addition to order {order_id} does not decrypt: the master key "
                "changed or the row was altered"
            ) from exc

    def put_buyer_secret(
        self, session: Session, *, order_id: int, buyer: str, secret: bytes
    ) -> None:
        """Store the buyer's per-order secret (checked by the caller against the chain)."""
        self._put(session, order_id, "buyer", buyer, json.dumps({"secret": secret.hex()}).encode())

    def put_supplier_codes(
        self, session: Session, *, order_id: int, supplier: str, codes: list[SupplierClaim]
    ) -> None:
        """Store the codes the supplier says it sent."""
        payload = {
            "codes": [
                {
                    "index": c.index,
                    "salt": c.salt.hex(),
                    "code": base64.b64encode(c.code).decode("ascii"),
                }
                for c in codes
            ]
        }
        self._put(session, order_id, "supplier", supplier, json.dumps(payload).encode())

    def buyer_secret(self, session: Session, order_id: int) -> bytes | None:
        """The buyer's secret for an order, if it added one."""
        data = self._get(session, order_id, "buyer")
        return bytes.fromhex(json.loads(data)["secret"]) if data is not None else None

    def supplier_codes(self, session: Session, order_id: int) -> list[SupplierClaim] | None:
        """The codes the supplier says it sent, if it added them."""
        data = self._get(session, order_id, "supplier")
        if data is None:
            return None
        return [
            SupplierClaim(
                index=int(c["index"]),
                salt=bytes.fromhex(c["salt"]),
                code=base64.b64decode(c["code"]),
            )
            for c in json.loads(data)["codes"]
        ]
