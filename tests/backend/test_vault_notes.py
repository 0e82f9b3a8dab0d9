"""Suppliers' notes are sealed at rest like codes (issue 19, finding 5), on SQLite and PostgreSQL:
an upload's notes never reach a row, a SQL log line or a dump in plaintext; they are bound to
their code's place; notes stored in plaintext before migration 0004 are sealed and cleared the
first time the vault is opened with its key; and whoever reads notes still gets them."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db import MIGRATIONS_DIR, make_engine, migrate, session_factory
from backend.errors import VaultKeyError
from backend.vault.crypto import CodeCipher
from backend.vault.master import open_vault
from backend.vault.notes import count_legacy_notes, read_notes
from backend.vault.service import upload_codes
from bench.world import World, demo_codes

SUPPLIER = "0x" + "5a" * 20

#: The vault's tables as every revision since 0001 has them (no note_sealed: see `insert_codes`).
UPLOADS = sa.table(
    "vault_uploads",
    *(sa.column(n) for n in ("id", "supplier", "listing_id", "first_index", "count", "root")),
    *(sa.column(n) for n in ("state", "created_at", "updated_at")),
)
CODES_COLUMNS = [
    *("upload_id", "supplier", "listing_id", "code_index", "commitment", "fingerprint"),
    *("ciphertext", "nonce", "wrapped_key", "key_id", "note", "state"),
]


def insert_codes(
    session: Session,
    cipher: CodeCipher,
    listing_id: int,
    notes: list[str | None],
    *,
    upload_id: int = 1,
    first_index: int = 0,
    legacy: bool = False,
) -> list[bytes]:
    """Store codes straight into the vault (no chain), as an upload of their revision would.

    With `legacy`, each note is plaintext in ``note`` as before revision 0004 (and the table
    may be at 0003); otherwise it is sealed into ``note_sealed``. Returns the codes.
    """
    now = datetime.now(UTC)
    session.execute(
        sa.insert(UPLOADS).values(
            id=upload_id,
            supplier=SUPPLIER,
            listing_id=listing_id,
            first_index=first_index,
            count=len(notes),
            root=os.urandom(32),
            state="committed",
            created_at=now,
            updated_at=now,
        )
    )
    columns = [*CODES_COLUMNS] if legacy else [*CODES_COLUMNS, "note_sealed"]
    codes_table = sa.table("vault_codes", *(sa.column(n) for n in columns))
    codes = demo_codes(len(notes), start=upload_id * 100_000)
    rows = []
    for j, (code, note) in enumerate(zip(codes, notes, strict=True)):
        index = first_index + j
        record = cipher.encrypt(listing_id, index, os.urandom(32), code, None if legacy else note)
        row = {
            "upload_id": upload_id,
            "supplier": SUPPLIER,
            "listing_id": listing_id,
            "code_index": index,
            "commitment": os.urandom(32),
            "fingerprint": os.urandom(32),
            "ciphertext": record.ciphertext,
            "nonce": record.nonce,
            "wrapped_key": record.wrapped_key,
            "key_id": record.key_id,
            "note": note if legacy else None,
            "state": "stock",
        }
        if not legacy:
            row["note_sealed"] = record.sealed_note
        rows.append(row)
    session.execute(sa.insert(codes_table), rows)
    return codes


def migrate_to(url: str, revision: str) -> None:
    """Bring only the backend's tables up to `revision` (an older schema, for upgrade tests)."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def raw_rows(session: Session) -> list[dict[str, object]]:
    """Every row of ``vault_codes`` as the database returns it."""
    result = session.execute(sa.text("SELECT * FROM vault_codes ORDER BY code_index"))
    return [dict(r._mapping) for r in result]


def _dump(session: Session) -> bytes:
    out = bytearray()
    for table in sa.inspect(session.get_bind()).get_table_names():
        for row in session.execute(sa.text(f'SELECT * FROM "{table}"')):
            for cell in row:
                if isinstance(cell, bytes | bytearray | memoryview):
                    out += bytes(cell)
                elif cell is not None:
                    out += str(cell).encode()
    return bytes(out)


def test_uploaded_notes_are_sealed_in_rows_and_logs_and_read_back(
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lid, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    codes = demo_codes(40)
    notes = {i: f"PIN-{i:04d}-SECRET" for i in range(40) if i % 3}
    lines = [c + (b",," + notes[i].encode() if i in notes else b"") for i, c in enumerate(codes)]
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    with sessions() as session:
        result = upload_codes(
            session, world.escrow, world.supplier, lid, b"\n".join(lines), settings
        )
    assert result.state == "committed"
    assert "note_sealed" in caplog.text and "'staged'" in caplog.text  # statements and values
    assert "PIN-" not in caplog.text
    caplog.set_level(logging.WARNING, logger="sqlalchemy.engine")

    with sessions() as session:
        rows = raw_rows(session)
        assert len(rows) == 40
        for row in rows:
            assert row["note"] is None
            assert (row["note_sealed"] is not None) == (row["code_index"] in notes)
        assert b"PIN-" not in _dump(session)
        cipher = CodeCipher(settings.master_key_bytes)
        assert read_notes(session, cipher, lid) == sorted(notes.items())
        assert read_notes(session, cipher, lid, first_index=4, count=3) == [
            (i, notes[i]) for i in (4, 5) if i in notes
        ]
        with pytest.raises(VaultKeyError):
            read_notes(session, CodeCipher(os.urandom(32)), lid)


def test_a_note_moved_to_another_code_does_not_decrypt(sessions: sessionmaker[Session]) -> None:
    cipher = CodeCipher(os.urandom(32))
    with sessions() as session:
        insert_codes(session, cipher, 7, ["PIN-A", "PIN-B"])
        session.commit()
        first = session.execute(
            sa.text("SELECT note_sealed FROM vault_codes WHERE code_index = 0")
        ).scalar_one()
        session.execute(
            sa.text("UPDATE vault_codes SET note_sealed = :n WHERE code_index = 1"), {"n": first}
        )
        with pytest.raises(VaultKeyError, match="note of code 7/1 does not decrypt"):
            read_notes(session, cipher, 7)
        assert read_notes(session, cipher, 7, count=1) == [(0, "PIN-A")]


def test_plaintext_notes_from_before_0004_are_sealed_when_the_vault_opens(db_url: str) -> None:
    key = os.urandom(32)
    cipher = CodeCipher(key)
    notes = [f"PIN-{i:03d}" if i % 2 else None for i in range(25)]
    migrate_to(db_url, "0003")
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            insert_codes(session, cipher, 3, notes, legacy=True)
            session.commit()
        migrate(engine)  # the migration cannot seal them: no key
        sessions = session_factory(engine)
        with sessions() as session:
            assert sum(r["note"] is not None for r in raw_rows(session)) == 12
            assert count_legacy_notes(session) == 12
            # Until the vault is opened, a reader still gets them.
            assert [n for _, n in read_notes(session, cipher, 3)] == [n for n in notes if n]

            with pytest.raises(VaultKeyError):  # the wrong key seals nothing
                open_vault(session, os.urandom(32))
            session.rollback()
            assert count_legacy_notes(session) == 12

            progress: list[tuple[int, int]] = []
            opened = open_vault(session, key, progress=lambda *p: progress.append(p))
            session.commit()
            assert (opened.adopted, opened.notes_sealed) == (True, 12)
            assert progress[-1] == (12, 12)
        with sessions() as session:
            rows = raw_rows(session)
            assert all(r["note"] is None for r in rows)
            assert [r["note_sealed"] is not None for r in rows] == [n is not None for n in notes]
            assert b"PIN-" not in _dump(session)
            expected = [(i, n) for i, n in enumerate(notes) if n]
            assert read_notes(session, cipher, 3) == expected
            assert open_vault(session, key).notes_sealed == 0
    finally:
        engine.dispose()


def test_downgrading_0004_refuses_to_drop_sealed_notes(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            insert_codes(session, CodeCipher(os.urandom(32)), 1, ["PIN-1"])
            session.commit()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with pytest.raises(RuntimeError, match="sealed notes"), engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("vault_codes")}
        assert "note_sealed" in columns
    finally:
        engine.dispose()
