"""The mirror's Alembic tree: idempotent, its own version table, and equal to the models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from indexer.db import VERSION_TABLE, current_revision, make_engine, migrate
from indexer.models import Base

if TYPE_CHECKING:
    from pathlib import Path


def _check(url: str) -> None:
    assert current_revision(url) is None
    migrate(url)
    migrate(url)  # a second start changes nothing
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            assert VERSION_TABLE in names and "alembic_version" not in names
            assert set(Base.metadata.tables) <= names
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = [
                d
                for d in compare_metadata(ctx, Base.metadata)
                if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
            ]
            assert diff == [], diff
    finally:
        engine.dispose()
    assert current_revision(url) == "0003"


def test_migrations_build_the_models_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_migrations_build_the_models_on_postgres(postgres_url: str) -> None:
    _check(postgres_url)


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()


def test_plain_postgres_urls_mean_psycopg() -> None:
    from indexer.db import normalize_url

    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
