"""The vault recognises its master key (issue 19, finding 5): an empty vault adopts the configured
key, a vault written with another key refuses to start with one line naming both key ids and the
fix, on SQLite and PostgreSQL; a vault from before migration 0004 is judged by its records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from backend.cli.app import app
from backend.config import Settings
from backend.db import make_engine, migrate, session_factory
from backend.evidence.store import AdditionsStore
from backend.runtime import Runtime
from backend.vault.crypto import CodeCipher, key_check, master_key_id
from backend.vault.master import MasterKeyMismatch, VaultKey, open_vault, vault_key_id
from bench.world import World
from contracts.chain import Chain
from contracts.client import EscrowClient, EscrowConfig
from tests.backend.engine_helpers import engine_settings, stock_listing
from tests.backend.test_vault_notes import insert_codes, migrate_to


def expected_refusal(written: bytes | str, configured: bytes) -> str:
    """The one line the start-up check prints."""
    written_id = written if isinstance(written, str) else master_key_id(written)
    return (
        "KAMENG_MASTER_KEY is not the key this vault was written with (key id "
        f"{written_id}, configured {master_key_id(configured)}); set the original key or "
        "rotate with `kameng vault rotate-key`"
    )


def test_an_empty_vault_adopts_the_configured_key_and_refuses_another(
    sessions: sessionmaker[Session],
) -> None:
    key, other = os.urandom(32), os.urandom(32)
    with sessions() as session:
        assert vault_key_id(session) is None
        opened = open_vault(session, key)
        session.commit()
        assert (opened.key_id, opened.adopted, opened.notes_sealed) == (master_key_id(key), True, 0)
    with sessions() as session:
        row = session.get(VaultKey, 1)
        assert row is not None and row.key_id == master_key_id(key)
        assert bytes(row.key_check) == key_check(key) and key not in bytes(row.key_check)
        assert open_vault(session, key).adopted is False
        with pytest.raises(MasterKeyMismatch) as caught:
            open_vault(session, other)
    assert str(caught.value) == expected_refusal(key, other)
    assert (caught.value.written, caught.value.configured) == (
        master_key_id(key),
        master_key_id(other),
    )


def test_the_runtime_refuses_to_start_with_another_key_and_starts_with_its_own(
    world: World, db_url: str
) -> None:
    settings = engine_settings()
    other = engine_settings()
    runtime = Runtime.local(
        settings,
        chain=world.chain,
        escrow=world.escrow,
        delivery_account=world.delivery_key,
        database_url=db_url,
    )
    try:
        stocked = stock_listing(world, runtime.sessions, settings, count=5)
    finally:
        runtime.stop()

    with pytest.raises(MasterKeyMismatch) as caught:
        Runtime.local(
            other,
            chain=world.chain,
            escrow=world.escrow,
            delivery_account=world.delivery_key,
            database_url=db_url,
        )
    refusal = str(caught.value)
    assert refusal == expected_refusal(settings.master_key_bytes, other.master_key_bytes)
    assert "\n" not in refusal

    again = Runtime.local(
        settings,
        chain=world.chain,
        escrow=world.escrow,
        delivery_account=world.delivery_key,
        database_url=db_url,
    )
    again.stop()
    assert stocked.upload.count == 5


def test_an_upload_under_another_key_is_refused_before_anything_is_stored(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stock_listing(world, sessions, settings, count=3)
    other = engine_settings(fingerprint_key=settings.fingerprint_key.get_secret_value())
    with pytest.raises(MasterKeyMismatch):
        stock_listing(world, sessions, other, count=3, start=100)
    with sessions() as session:
        assert session.execute(sa.text("SELECT COUNT(*) FROM vault_codes")).scalar_one() == 3


def test_a_vault_from_before_0004_is_judged_by_its_code_records(db_url: str) -> None:
    key, other = os.urandom(32), os.urandom(32)
    migrate_to(db_url, "0003")
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            insert_codes(session, CodeCipher(key), 1, [None, "lot 1"], legacy=True)
            session.commit()
        migrate(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            with pytest.raises(MasterKeyMismatch) as caught:
                open_vault(session, other)
            assert str(caught.value) == expected_refusal(key, other)
            session.rollback()
            assert vault_key_id(session) is None
            assert open_vault(session, key).adopted
            session.commit()
            assert vault_key_id(session) == master_key_id(key)
    finally:
        engine.dispose()


def test_a_vault_holding_only_evidence_additions_is_judged_by_them(
    sessions: sessionmaker[Session],
) -> None:
    key, other = os.urandom(32), os.urandom(32)
    with sessions() as session:
        AdditionsStore(key).put_buyer_secret(
            session, order_id=(1 << 32) | 4, buyer="0x" + "bb" * 20, secret=os.urandom(32)
        )
        session.commit()
        with pytest.raises(MasterKeyMismatch) as caught:
            open_vault(session, other)
        assert str(caught.value) == expected_refusal("unknown", other)
        session.rollback()
        assert open_vault(session, key).adopted


def test_serve_refuses_another_key_with_one_line(
    anvil: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "400")
    assert anvil.rpc_url is not None
    admin = anvil.new_account(ether=10)
    escrow = EscrowClient.deploy(anvil, admin, EscrowConfig(fee_recipient=admin.address))
    database_url = f"sqlite:///{tmp_path}/vault.db"
    settings = engine_settings()
    first = Runtime.connect(
        settings, rpc_url=anvil.rpc_url, database_url=database_url, escrow=escrow.address
    )
    first.stop()

    other = engine_settings()
    env = {
        "KAMENG_MASTER_KEY": other.master_key.get_secret_value(),
        "KAMENG_FINGERPRINT_KEY": other.fingerprint_key.get_secret_value(),
        "KAMENG_SESSION_KEY": other.session_key.get_secret_value(),
        "KAMENG_DELIVERY_KEY": os.urandom(32).hex(),
        "KAMENG_DATABASE_URL": database_url,
    }
    result = CliRunner().invoke(
        app,
        ["serve", "--rpc-url", anvil.rpc_url, "--escrow", escrow.address, "--port", "1"],
        env=env,
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    refusal = expected_refusal(settings.master_key_bytes, other.master_key_bytes)
    assert lines[-1] == f"error: {refusal}", result.output
