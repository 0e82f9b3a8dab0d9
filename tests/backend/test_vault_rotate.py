"""`kameng vault rotate-key` (issue 19, finding 5), on SQLite and PostgreSQL: after a rotation the
app starts with the new key and every code, note and evidence addition opens under it while the
old key is refused; a rotation that fails part-way leaves every byte under the old key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.cli.app import app
from backend.config import Settings
from backend.errors import VaultKeyError
from backend.evidence.derive import SupplierClaim
from backend.evidence.store import AdditionsStore
from backend.models import Code
from backend.notify.endpoints import SecretBox, new_secret
from backend.notify.models import Endpoint
from backend.runtime import Runtime
from backend.vault.crypto import CodeCipher, master_key_id
from backend.vault.master import MasterKeyMismatch, open_vault, vault_key_id
from backend.vault.notes import read_notes, record_of
from backend.vault.rotate import rotate_master_key
from backend.vault.service import upload_codes
from bench.world import World, demo_codes
from tests.backend.engine_helpers import engine_settings
from tests.backend.test_vault_notes import insert_codes

BUYER = "0x" + "bb" * 20
SUPPLIER = "0x" + "5a" * 20


#: A webhook's secret, which the rotation must carry over.
WEBHOOK_SECRET = new_secret()


@pytest.fixture(autouse=True)
def no_kameng_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "400")


def env_of(settings: Settings, database_url: str) -> dict[str, str]:
    """The environment `kameng serve` would run with."""
    assert settings.delivery_key is not None
    return {
        "KAMENG_MASTER_KEY": settings.master_key.get_secret_value(),
        "KAMENG_FINGERPRINT_KEY": settings.fingerprint_key.get_secret_value(),
        "KAMENG_SESSION_KEY": settings.session_key.get_secret_value(),
        "KAMENG_DELIVERY_KEY": settings.delivery_key.get_secret_value(),
        "KAMENG_DATABASE_URL": database_url,
    }


def with_master_key(settings: Settings, master_key: bytes) -> Settings:
    """The same settings with another master key."""
    values = {
        "master_key": master_key.hex(),
        "fingerprint_key": settings.fingerprint_key.get_secret_value(),
        "session_key": settings.session_key.get_secret_value(),
    }
    assert settings.delivery_key is not None
    return engine_settings(**values, delivery_key=settings.delivery_key.get_secret_value())


def add_evidence(session: Session, master_key: bytes) -> None:
    """Two orders' evidence additions, as the evidence service stores them."""
    store = AdditionsStore(master_key)
    store.put_buyer_secret(session, order_id=(1 << 32) | 0, buyer=BUYER, secret=b"\x11" * 32)
    store.put_supplier_codes(
        session,
        order_id=(1 << 32) | 0,
        supplier=SUPPLIER,
        codes=[SupplierClaim(index=0, salt=b"\x22" * 32, code=b"KMG-EVIDENCE")],
    )
    store.put_buyer_secret(session, order_id=(2 << 32) | 5, buyer=BUYER, secret=b"\x33" * 32)


def check_evidence(session: Session, master_key: bytes) -> None:
    """The additions of `add_evidence` read back through the evidence service's store."""
    store = AdditionsStore(master_key)
    assert store.buyer_secret(session, (1 << 32) | 0) == b"\x11" * 32
    assert store.buyer_secret(session, (2 << 32) | 5) == b"\x33" * 32
    claims = store.supplier_codes(session, (1 << 32) | 0)
    assert claims == [SupplierClaim(index=0, salt=b"\x22" * 32, code=b"KMG-EVIDENCE")]


def snapshot(session: Session) -> list[tuple[object, ...]]:
    """Every byte of the rows a rotation rewrites, and the key row."""
    out: list[tuple[object, ...]] = []
    for query in (
        "SELECT * FROM vault_codes ORDER BY id",
        "SELECT * FROM evidence_additions ORDER BY order_id, party",
        "SELECT * FROM vault_keys",
    ):
        out.extend(
            tuple(bytes(c) if isinstance(c, memoryview) else c for c in row)
            for row in session.execute(sa.text(query))
        )
    return out


def test_after_rotation_the_app_opens_with_the_new_key_only_and_everything_decrypts(
    world: World, db_url: str, tmp_path: Path
) -> None:
    settings = engine_settings()
    runtime = Runtime.local(
        settings,
        chain=world.chain,
        escrow=world.escrow,
        delivery_account=world.delivery_key,
        database_url=db_url,
    )
    lid, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    codes = demo_codes(30)
    notes = {i: f"PIN-{i}" for i in range(0, 30, 2)}
    lines = [c + (f",,{notes[i]}".encode() if i in notes else b"") for i, c in enumerate(codes)]
    try:
        with runtime.sessions() as session:
            upload_codes(session, world.escrow, world.supplier, lid, b"\n".join(lines), settings)
            add_evidence(session, settings.master_key_bytes)
            # A plaintext note as an older version stored it, not sealed yet.
            session.execute(
                sa.text("UPDATE vault_codes SET note = 'PIN-LEGACY' WHERE code_index = 1")
            )
            # A webhook's signing secret, sealed under the master key too.
            session.add(
                Endpoint(
                    owner="0x" + "ab" * 20,
                    kind="webhook",
                    target="https://shop.example/hook",
                    events="*",
                    as_arbiter=False,
                    secret_sealed=SecretBox(settings.master_key_bytes).seal(WEBHOOK_SECRET),
                    active=True,
                )
            )
            # A code of a final order, erased by retention: nothing left to re-wrap.
            session.execute(
                sa.update(Code)
                .where(Code.listing_id == lid, Code.code_index == 29)
                .values(ciphertext=b"", wrapped_key=b"", state="purged")
            )
            session.commit()
    finally:
        runtime.stop()

    new_key = os.urandom(32)
    key_file = tmp_path / "new-master.key"
    key_file.write_text("0x" + new_key.hex() + "\n")
    result = CliRunner().invoke(
        app, ["vault", "rotate-key", "--new-key-file", str(key_file)], env=env_of(settings, db_url)
    )
    assert result.exit_code == 0, result.output
    old_id, new_id = master_key_id(settings.master_key_bytes), master_key_id(new_key)
    out = " ".join(result.output.split())
    assert f"from key id {old_id} to key id {new_id}" in out
    assert "30 code record(s) (1 plaintext note(s) sealed on the way) and 3 evidence" in out
    assert new_key.hex() not in result.output

    with pytest.raises(MasterKeyMismatch) as caught:
        Runtime.local(
            settings,
            chain=world.chain,
            escrow=world.escrow,
            delivery_account=world.delivery_key,
            database_url=db_url,
        )
    assert f"key id {new_id}, configured {old_id}" in str(caught.value)

    rotated = with_master_key(settings, new_key)
    again = Runtime.local(
        rotated,
        chain=world.chain,
        escrow=world.escrow,
        delivery_account=world.delivery_key,
        database_url=db_url,
    )
    try:
        cipher = CodeCipher(new_key)
        with again.sessions() as session:
            assert vault_key_id(session) == new_id
            rows = session.execute(select_codes()).scalars().all()
            kept = [r for r in rows if r.state != "purged"]
            assert [cipher.decrypt(lid, r.code_index, record_of(r))[1] for r in kept] == codes[:29]
            assert {r.key_id for r in rows} == {new_id}
            assert all(r.legacy_note is None for r in rows)
            assert read_notes(session, cipher, lid) == sorted({**notes, 1: "PIN-LEGACY"}.items())
            check_evidence(session, new_key)
            sealed = session.scalars(sa.select(Endpoint.secret_sealed)).one()
            assert sealed is not None and SecretBox(new_key).open(sealed) == WEBHOOK_SECRET
            with pytest.raises(VaultKeyError):
                read_notes(session, CodeCipher(settings.master_key_bytes), lid)
    finally:
        again.stop()


def select_codes() -> sa.Select[Code]:
    """Every code row, by index."""
    return sa.select(Code).order_by(Code.code_index)


@pytest.mark.parametrize("where", ["codes", "additions"])
def test_a_rotation_that_fails_part_way_leaves_everything_under_the_old_key(
    sessions: sessionmaker[Session], where: str
) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    notes: list[str | None] = [f"PIN-{i}" if i % 4 else None for i in range(1200)]
    with sessions() as session:
        codes = insert_codes(session, CodeCipher(old_key), 9, notes)
        add_evidence(session, old_key)
        open_vault(session, old_key)
        session.commit()
        if where == "additions":  # an addition that no longer decrypts, met after every code
            session.execute(
                sa.text(
                    "UPDATE evidence_additions SET ciphertext = :c "
                    "WHERE order_id = :o AND party = 'buyer'"
                ),
                {"c": os.urandom(60), "o": str((2 << 32) | 5)},
            )
            session.commit()
        before = snapshot(session)

    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if where == "codes" and done >= 600:
            raise RuntimeError("the machine went away")

    with sessions() as session:
        failure = RuntimeError if where == "codes" else VaultKeyError
        with pytest.raises(failure):
            rotate_master_key(session, old_key, new_key, batch_size=100, progress=progress)
    assert seen[0] == (100, 1203)
    assert seen[-1][0] >= (600 if where == "codes" else 1200)

    with sessions() as session:
        assert snapshot(session) == before
        assert vault_key_id(session) == master_key_id(old_key)
        with pytest.raises(MasterKeyMismatch):
            open_vault(session, new_key)
        session.rollback()
        opened = open_vault(session, old_key)
        assert (opened.adopted, opened.notes_sealed) == (False, 0)
        cipher = CodeCipher(old_key)
        rows = session.execute(select_codes()).scalars().all()
        assert [cipher.decrypt(9, r.code_index, record_of(r))[1] for r in rows] == codes
        assert [n for _, n in read_notes(session, cipher, 9)] == [n for n in notes if n]
        if where == "codes":
            check_evidence(session, old_key)


def test_rotation_reports_progress_and_is_refused_for_the_wrong_or_same_key(
    sessions: sessionmaker[Session],
) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    with sessions() as session:
        insert_codes(session, CodeCipher(old_key), 2, ["PIN"] * 250)
        add_evidence(session, old_key)
        open_vault(session, old_key)
        session.commit()
    with sessions() as session, pytest.raises(MasterKeyMismatch):
        rotate_master_key(session, os.urandom(32), new_key)
    with sessions() as session, pytest.raises(VaultKeyError, match="is the current one"):
        rotate_master_key(session, old_key, old_key)

    seen: list[tuple[int, int]] = []
    with sessions() as session:
        result = rotate_master_key(
            session, old_key, new_key, batch_size=100, progress=lambda *p: seen.append(p)
        )
    assert (result.codes, result.notes_sealed, result.additions) == (250, 0, 3)
    assert seen == [(100, 253), (200, 253), (250, 253), (253, 253)]
    with sessions() as session:
        assert read_notes(session, CodeCipher(new_key), 2) == [(i, "PIN") for i in range(250)]
        check_evidence(session, new_key)
        # and back again, from the new key to a third one
        third = os.urandom(32)
        assert rotate_master_key(session, new_key, third).codes == 250
        assert vault_key_id(session) == master_key_id(third)


def test_rotate_key_takes_the_new_key_from_a_file_or_the_environment_only(
    sessions: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    settings = engine_settings()
    with sessions() as session:
        insert_codes(session, CodeCipher(settings.master_key_bytes), 1, ["PIN-1"])
        open_vault(session, settings.master_key_bytes)
        session.commit()
    env = env_of(settings, db_url)
    runner = CliRunner()

    def rotate(*args: str, **extra: str) -> tuple[int, str]:
        result = runner.invoke(app, ["vault", "rotate-key", *args], env={**env, **extra})
        return result.exit_code, " ".join(result.output.split())

    code, out = rotate()
    assert code == 2 and "--new-key-file PATH" in out and "KAMENG_NEW_MASTER_KEY" in out
    code, out = rotate("--new-key", os.urandom(32).hex())
    assert code == 2 and "No such option" in out
    code, out = rotate(KAMENG_NEW_MASTER_KEY="0x1234")
    assert code == 2 and "64 hex digits" in out
    code, out = rotate(KAMENG_NEW_MASTER_KEY=settings.master_key.get_secret_value())
    assert code == 2 and "is the current one" in out
    code, out = rotate(KAMENG_NEW_MASTER_KEY=settings.session_key.get_secret_value())
    assert code == 2 and "equals KAMENG_SESSION_KEY" in out
    code, out = rotate(
        KAMENG_NEW_MASTER_KEY=os.urandom(32).hex(), KAMENG_MASTER_KEY=os.urandom(32).hex()
    )
    assert code == 1 and "is not this vault's" in out and "nothing changed" in out
    missing = tmp_path / "absent.key"
    code, out = rotate("--new-key-file", str(missing))
    assert code == 2 and f"cannot read {missing}" in out

    new_key = os.urandom(32)
    code, out = rotate(KAMENG_NEW_MASTER_KEY=new_key.hex())
    assert code == 0 and f"to key id {master_key_id(new_key)}" in out
    with sessions() as session:
        assert read_notes(session, CodeCipher(new_key), 1) == [(0, "PIN-1")]

    def vault(*args: str, **extra: str) -> tuple[int, str]:
        result = runner.invoke(app, ["vault", *args], env={**env, **extra})
        return result.exit_code, " ".join(result.output.split())

    old_id, new_id = master_key_id(settings.master_key_bytes), master_key_id(new_key)
    code, out = vault("check-key")
    assert code == 1 and out == (
        f"error: KAMENG_MASTER_KEY is not the key this vault was written with (key id {new_id}, "
        f"configured {old_id}); set the original key or rotate with `kameng vault rotate-key`"
    )
    code, out = vault("check-key", KAMENG_MASTER_KEY=new_key.hex())
    assert code == 0 and f"is the vault's master key (key id {new_id})" in out
    code, out = vault("notes", "1", KAMENG_MASTER_KEY=new_key.hex())
    assert code == 0 and "PIN-1" in out
    code, out = vault("notes", "1")
    assert code == 1 and "PIN-1" not in out
