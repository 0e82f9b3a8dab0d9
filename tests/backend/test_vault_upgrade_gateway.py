"""Upgrading across backend migration 0010 (uploads commit through the chain gateway) loses no
upload in flight: a ``pending`` upload that holds the signed commitBatch bytes of the old vault
becomes a gateway row with those very bytes, which recovery sends and follows to a committed
batch, once; its codes (whose rows reference the upload, ON DELETE CASCADE) all survive the
table change. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import sqlalchemy as sa
from eth_utils import keccak
from sqlalchemy import select

from backend.db import make_engine, migrate, session_factory
from backend.gateway.models import ChainTx, TxState
from backend.models import Code, Upload
from backend.vault.crypto import CodeCipher
from backend.vault.service import commit_data, recover_pending
from bench.world import World, demo_codes
from contracts.encoding import commitment, leaf
from contracts.merkle import MerkleTree
from tests.backend.engine_helpers import engine_settings
from tests.backend.test_vault_notes import migrate_to


def test_a_pending_upload_signed_before_0010_is_committed_once_after_it(
    world: World, db_url: str
) -> None:
    settings = engine_settings()
    escrow, supplier = world.escrow, world.supplier
    lid, _ = escrow.create_listing(supplier, sku=world.sku, unit_price=10**15)
    codes = demo_codes(6)
    salts = [os.urandom(32) for _ in codes]
    tree = MerkleTree(
        [leaf(i, commitment(s, c)) for i, (s, c) in enumerate(zip(salts, codes, strict=False))]
    )
    # The old vault's step 2: a legacy (gas price) commitBatch signed, stored, not yet sent.
    escrow.tx.reset_nonce(supplier.address)
    nonce = int(escrow.w3.eth.get_transaction_count(supplier.address, "pending"))
    call = Upload(listing_id=lid, root=tree.root, count=len(codes), first_index=0)
    signed = supplier.sign_transaction(
        {
            "chainId": escrow.chain.chain_id,
            "to": escrow.address,
            "data": commit_data(call),
            "value": 0,
            "gas": 300_000,
            "gasPrice": int(escrow.w3.eth.gas_price) * 2,
            "nonce": nonce,
        }
    )
    tx_hash = "0x" + bytes(signed.hash).hex()

    migrate_to(db_url, "0009")
    engine = make_engine(db_url)
    cipher = CodeCipher(settings.master_key_bytes)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO vault_meta (id, chain_id, escrow) VALUES (1, :c, :e)"),
                {"c": escrow.chain.chain_id, "e": escrow.address},
            )
            upload_id = conn.execute(
                sa.text(
                    "INSERT INTO vault_uploads (supplier, listing_id, first_index, count, root,"
                    " state, tx_nonce, tx_hash, raw_tx, created_at, updated_at) VALUES (:s, :l,"
                    " 0, :n, :r, 'pending', :nonce, :h, :raw, :t, :t) RETURNING id"
                ),
                {
                    "s": supplier.address,
                    "l": lid,
                    "n": len(codes),
                    "r": tree.root,
                    "nonce": nonce,
                    "h": tx_hash,
                    "raw": bytes(signed.raw_transaction),
                    "t": datetime(2026, 12, 1, tzinfo=UTC),
                },
            ).scalar_one()
            for i, (salt, code) in enumerate(zip(salts, codes, strict=True)):
                record = cipher.encrypt(lid, i, salt, code, None)
                conn.execute(
                    sa.insert(Code.__table__).values(
                        upload_id=upload_id,
                        supplier=supplier.address,
                        listing_id=lid,
                        code_index=i,
                        commitment=commitment(salt, code),
                        fingerprint=keccak(code),
                        ciphertext=record.ciphertext,
                        nonce=record.nonce,
                        wrapped_key=record.wrapped_key,
                        key_id=record.key_id,
                        state="staged",
                    )
                )
        migrate(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            upload = session.get(Upload, upload_id)
            assert upload is not None and upload.chain_tx_id is not None
            row = session.get(ChainTx, upload.chain_tx_id)
            assert row is not None
            assert (row.state, row.nonce, row.tx_hash) == (TxState.SIGNED, nonce, tx_hash)
            assert bytes(row.raw_tx or b"") == bytes(signed.raw_transaction)
            assert bytes(row.data) == commit_data(upload)
            assert session.scalar(select(sa.func.count()).select_from(Code)) == len(codes)

            (result,) = recover_pending(session, escrow, settings)  # no supplier key
        assert result.state == "committed" and result.tx_hash == tx_hash
        assert escrow.batch(lid, 0) == (tree.root, 0, len(codes))
        assert escrow.listing(lid)["batch_count"] == 1
        with sessions() as session:
            states = session.scalars(select(Code.state).where(Code.upload_id == upload_id)).all()
            assert sorted(states) == ["stock"] * len(codes)
            assert recover_pending(session, escrow, settings) == []
    finally:
        engine.dispose()
