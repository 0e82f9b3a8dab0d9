"""The parties' additions to an order's evidence, kept encrypted beside the backend's tables.

A buyer adds its per-order X25519 secret (it opens that order's release and nothing else); a
supplier adds the salts and plaintext codes it says it sent. Both are secrets until the arbiter
reads them, so they are stored AES-256-GCM encrypted under a key derived from the master key
(``HMAC-SHA256(master key, "kameng.evidence.additions.v1")``), with the order id and the party
as associated data. The table ``evidence_additions`` is created by the backend's migration
0002.

Every disclosure of plaintext is recorded in ``evidence_disclosures`` (migration 0005), where
both parties and the arbiters can read it: a party attaching its secret or codes (``buyer-secret``,
``supplier-codes``, ``vault-codes`` when the supplier had this backend's vault release them) and
each time an arbiter receives a bundle that carries them (``arbiter-read``).
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
from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, String, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import EvidenceError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PARTIES = ("buyer", "supplier")
#: Kinds of recorded disclosure.
DISCLOSURE_KINDS = ("buyer-secret", "supplier-codes", "vault-codes", "arbiter-read")


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


class Disclosure(Base):
    """One disclosure of an order's plaintext: who, what, when. Never updated, never deleted."""

    __tablename__ = "evidence_disclosures"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    order_id: Mapped[str] = mapped_column(String(78), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(42))
    codes: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def record_disclosure(
    session: Session, *, order_id: int, kind: str, actor: str, codes: int
) -> None:
    """Record a disclosure (committed with the caller's transaction)."""
    if kind not in DISCLOSURE_KINDS:
        raise ValueError(f"unknown disclosure kind {kind!r}")
    session.add(
        Disclosure(
            order_id=str(order_id), kind=kind, actor=actor, codes=codes, at=datetime.now(UTC)
        )
    )


def disclosures(session: Session, order_id: int) -> list[Disclosure]:
    """An order's disclosures, oldest first."""
    return list(
        session.scalars(
            select(Disclosure).where(Disclosure.order_id == str(order_id)).order_by(Disclosure.id)
        )
    )


def added_parties(session: Session, order_id: int) -> list[str]:
    """Which parties added something to an order's evidence."""
    return sorted(session.scalars(select(Addition.party).where(Addition.order_id == str(order_id))))


def vault_disclosed(session: Session, order_id: int) -> bool:
    """Whether the supplier's current addition to the order came from this backend's vault."""
    last = session.scalar(
        select(Disclosure.kind)
        .where(
            Disclosure.order_id == str(order_id),
            Disclosure.kind.in_(("supplier-codes", "vault-codes")),
        )
        .order_by(Disclosure.id.desc())
        .limit(1)
    )
    return last == "vault-codes"


def purge_additions(session: Session, order_ids: list[int]) -> int:
    """Delete the parties' additions to these orders (the disclosure record stays)."""
    if not order_ids:
        return 0
    result = session.execute(
        delete(Addition).where(Addition.order_id.in_([str(o) for o in order_ids]))
    )
    return int(getattr(result, "rowcount", 0) or 0)


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
