"""The parties' additions on SQLite and PostgreSQL: stored encrypted, bound to their order and
party, unreadable under another master key."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from backend.db import make_engine, migrate, session_factory
from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import EvidenceError
from backend.evidence.store import Addition, AdditionsStore


def test_additions_round_trip_encrypted_and_bound_to_their_row(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        sessions = session_factory(engine)
        store = AdditionsStore(os.urandom(32))
        secret = os.urandom(32)
        oid = (7 << 32) | 3
        codes = [
            SupplierClaim(3, os.urandom(32), b"KMG-CODE-3"),
            SupplierClaim(4, os.urandom(32), b"KMG-4"),
        ]
        with sessions() as session:
            store.put_buyer_secret(session, order_id=oid, buyer="0x" + "ab" * 20, secret=secret)
            store.put_supplier_codes(session, order_id=oid, supplier="0x" + "cd" * 20, codes=codes)
            session.commit()
        with sessions() as session:
            assert store.buyer_secret(session, oid) == secret
            assert store.supplier_codes(session, oid) == codes
            assert store.buyer_secret(session, oid + 1) is None
            rows = session.scalars(select(Addition)).all()
            assert len(rows) == 2
            assert all(secret not in r.ciphertext and b"KMG" not in r.ciphertext for r in rows)
            # A row moved to another order does not decrypt there.
            buyer_row = next(r for r in rows if r.party == "buyer")
            buyer_row.order_id = str(oid + 1)
            session.commit()
        with sessions() as session, pytest.raises(EvidenceError):
            store.buyer_secret(session, oid + 1)
        with sessions() as session, pytest.raises(EvidenceError):
            AdditionsStore(os.urandom(32)).supplier_codes(session, oid)
    finally:
        engine.dispose()
