"""The files kameng keeps are readable by their user only (issue 19, finding 5).

A SQLite database, its -wal, -shm and -journal files, the directories made for them and the
development keys are created 0600 (directories 0700) under the usual umask 022, through the
code paths that create them: `backend.db.make_engine` and `migrate` (what `kameng serve` runs),
`indexer.db.make_engine` (`kameng index`), and `Runtime.write_dev_accounts`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from backend.config import Settings
from backend.db import make_engine, migrate
from backend.runtime import Runtime
from indexer import db as indexer_db


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The umask most systems run with (which lets a plain create make 0644 files)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sidecars(db: Path) -> dict[str, Path]:
    """The database's -wal, -shm and -journal files that exist now."""
    found = {s: db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal")}
    return {s: p for s, p in found.items() if p.exists()}


def test_a_fresh_database_its_wal_and_its_directories_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "kameng" / "kameng.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        migrate(engine)  # as Runtime.prepare_database does
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        with engine.connect() as conn:  # held open: the -wal and -shm files stay
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            extra = sidecars(db)
            assert {"-wal", "-shm"} <= set(extra), extra
            modes = {name: oct(mode(p)) for name, p in extra.items()}
            assert set(modes.values()) == {"0o600"}, modes
    finally:
        engine.dispose()
    assert oct(mode(db)) == "0o600"
    assert oct(mode(tmp_path / "data")) == "0o700"
    assert oct(mode(tmp_path / "data" / "kameng")) == "0o700"


def test_the_default_database_url_makes_a_private_var_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = Settings.model_fields["database_url"].default
    assert url == "sqlite:///./var/kameng.db"
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert oct(mode(tmp_path / "var")) == "0o700"
    assert oct(mode(tmp_path / "var" / "kameng.db")) == "0o600"


def test_a_rollback_journal_takes_the_database_files_mode(tmp_path: Path) -> None:
    """Outside WAL mode SQLite writes a -journal beside the database, with the database's mode."""
    db = tmp_path / "journal" / "kameng.db"
    make_engine(f"sqlite:///{db}").dispose()  # creates the file, connects nothing
    assert db.exists() and db.stat().st_size == 0
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        conn.execute("CREATE TABLE probe (x INTEGER)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO probe VALUES (1)")
        journal = sidecars(db)
        assert "-journal" in journal, journal
        assert oct(mode(journal["-journal"])) == "0o600"
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert oct(mode(db)) == "0o600"


def test_the_indexers_own_database_is_private_too(tmp_path: Path) -> None:
    """`kameng index` opens its mirror through indexer.db, not backend.db."""
    db = tmp_path / "mirror" / "index.db"
    indexer_db.migrate(f"sqlite:///{db}")
    assert oct(mode(db)) == "0o600"
    assert oct(mode(db.parent)) == "0o700"


def test_directories_that_exist_and_databases_that_exist_are_left_as_they_are(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    fresh = shared / "new" / "kameng.db"
    make_engine(f"sqlite:///{fresh}").dispose()
    assert oct(mode(shared)) == "0o755"  # not ours to change
    assert oct(mode(fresh.parent)) == "0o700"
    assert oct(mode(fresh)) == "0o600"
    old = shared / "old.db"
    old.touch(mode=0o640)
    make_engine(f"sqlite:///{old}").dispose()
    assert oct(mode(old)) == "0o640"


def test_memory_databases_create_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite://", "sqlite:///:memory:"):
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_the_development_keys_file_and_its_directory_are_private(tmp_path: Path) -> None:
    """`kameng serve` writes the dev world's keys to var/dev-accounts.json."""
    world = SimpleNamespace(as_json=lambda: {"buyers": [{"key": "0x" + "11" * 32}]})
    runtime = SimpleNamespace(
        dev=world,
        escrow=SimpleNamespace(address="0x" + "22" * 20),
        chain=SimpleNamespace(chain_id=31337),
        url="http://127.0.0.1:8000",
    )
    target = tmp_path / "var" / "dev-accounts.json"
    Runtime.write_dev_accounts(runtime, target)  # type: ignore[arg-type]
    assert json.loads(target.read_text())["chain_id"] == 31337
    assert oct(mode(target)) == "0o600"
    assert oct(mode(target.parent)) == "0o700"
    # A file left from before with a looser mode is tightened when it is rewritten.
    target.chmod(0o644)
    Runtime.write_dev_accounts(runtime, target)  # type: ignore[arg-type]
    assert oct(mode(target)) == "0o600"
