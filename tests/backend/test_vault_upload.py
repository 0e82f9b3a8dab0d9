"""Uploads end to end on eth-tester, against SQLite and PostgreSQL: stored encrypted,
committed on-chain, rejected whole with nothing half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.errors import (
    CommitFailed,
    NotListingOwner,
    UnknownListing,
    UploadRejected,
    UploadTooLarge,
)
from backend.models import Code, Upload
from backend.vault.crypto import CodeCipher, EncryptedRecord
from backend.vault.notes import record_of
from backend.vault.service import list_uploads, stock_counts, upload_codes
from bench.world import World, demo_codes
from contracts.encoding import commitment, leaf
from contracts.merkle import MerkleTree
from tests.backend.engine_helpers import engine_settings, stock_listing


def _listing(world: World) -> int:
    lid, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    return lid


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as s:
        return (
            s.execute(select(func.count()).select_from(Upload)).scalar_one(),
            s.execute(select(func.count()).select_from(Code)).scalar_one(),
        )


def test_upload_stores_encrypted_codes_and_commits_the_root(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    lid = _listing(world)
    codes = demo_codes(300)
    seen: list[tuple[int, int]] = []
    data = b"code,expiry,note\n" + b"\n".join(c + b",2030-01-01,lot 7" for c in codes)
    with sessions() as session:
        result = upload_codes(
            session,
            world.escrow,
            world.supplier,
            lid,
            data,
            settings,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert result.state == "committed" and result.batch_index == 0
    assert (result.first_index, result.count) == (0, 300)
    assert seen[-1] == (300, 300) and len(seen) > 1
    root, first, count = world.escrow.batch(lid, 0)
    assert (root, first, count) == (result.root, 0, 300)

    cipher = CodeCipher(settings.master_key_bytes)
    with sessions() as session:
        rows = session.execute(select(Code).order_by(Code.code_index)).scalars().all()
        assert [r.state for r in rows] == ["stock"] * 300
        leaves = []
        for row, code in zip(rows, codes, strict=True):
            record = EncryptedRecord(row.ciphertext, row.nonce, row.wrapped_key, row.key_id)
            salt, plain = cipher.decrypt(lid, row.code_index, record)
            assert plain == code and commitment(salt, plain) == row.commitment
            leaves.append(leaf(row.code_index, row.commitment))
            assert cipher.decrypt_note(lid, row.code_index, record_of(row)) == "lot 7"
            assert row.legacy_note is None and row.expires_at is not None
        assert MerkleTree(leaves).root == root
        assert stock_counts(session, lid) == {"stock": 300}
        assert [u.upload_id for u in list_uploads(session, supplier=world.supplier.address)] == [
            result.upload_id
        ]


def test_a_database_dump_reveals_no_code(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    lid = _listing(world)
    codes = demo_codes(50)
    with sessions() as session:
        upload_codes(session, world.escrow, world.supplier, lid, b"\n".join(codes), settings)
        dump = bytearray()
        for table in inspect(session.get_bind()).get_table_names():
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
    for code in codes:
        assert code not in dump
        assert code.hex().encode() not in dump


def test_second_upload_appends_after_the_first(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    with sessions() as session:
        second = upload_codes(
            session,
            world.escrow,
            world.supplier,
            stocked.listing_id,
            b"\n".join(demo_codes(5, start=10)),
            settings,
        )
    assert (second.first_index, second.batch_index) == (10, 1)
    assert world.escrow.batch(stocked.listing_id, 1) == (second.root, 10, 5)


def test_duplicates_against_earlier_stock_are_rejected_with_lines(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    other = _listing(world)  # the check spans all the supplier's listings
    data = b"\n".join([b"NEW-1", stocked.codes[3], b"NEW-2", stocked.codes[7]])
    before = _counts(sessions)
    with sessions() as session, pytest.raises(UploadRejected) as exc:
        upload_codes(session, world.escrow, world.supplier, other, data, settings)
    assert [line for line, _ in exc.value.problems] == [2, 4]
    assert "already in your stock" in exc.value.problems[0][1]
    assert stocked.codes[3].decode() not in str(exc.value)
    assert _counts(sessions) == before
    assert world.escrow.call("getListing", other)[1] == 0  # nothing committed


def test_another_supplier_may_hold_the_same_code(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=3)
    rival = world.chain.new_account()
    world.escrow.authorize(world.admin, rival.address, world.sku, b"\x01" * 32)
    lid, _ = world.escrow.create_listing(rival, sku=world.sku, unit_price=10**15)
    with sessions() as session:
        result = upload_codes(session, world.escrow, rival, lid, stocked.codes[0], settings)
    assert result.state == "committed"


def test_rejected_files_leave_nothing(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    lid = _listing(world)
    with sessions() as session:
        with pytest.raises(UploadRejected):
            upload_codes(session, world.escrow, world.supplier, lid, b"A\nA\n", settings)
        with pytest.raises(UploadTooLarge):
            small = engine_settings(max_upload_bytes=10)
            upload_codes(session, world.escrow, world.supplier, lid, b"A" * 11, small)
    assert _counts(sessions) == (0, 0)
    assert world.escrow.call("getListing", lid)[1] == 0


def test_listing_checks_happen_before_anything_is_stored(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    lid = _listing(world)
    with sessions() as session:
        with pytest.raises(UnknownListing):
            upload_codes(session, world.escrow, world.supplier, 99, b"A", settings)
        with pytest.raises(NotListingOwner):
            upload_codes(session, world.escrow, world.buyers[0], lid, b"A", settings)
        world.escrow.authorize(world.admin, world.supplier.address, world.sku, b"\0" * 32)
        with pytest.raises(CommitFailed, match="not authorized"):
            upload_codes(session, world.escrow, world.supplier, lid, b"A", settings)
    assert _counts(sessions) == (0, 0)
