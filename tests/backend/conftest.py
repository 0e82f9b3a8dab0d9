"""Fixtures for the backend engine: databases (SQLite and PostgreSQL) and settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

# Test modules import `tests.backend.engine_helpers`; the repository root must be importable.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from backend.config import Settings  # noqa: E402
from backend.db import make_engine, migrate, session_factory  # noqa: E402
from tests.backend.engine_helpers import engine_settings  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """An empty database, once as a SQLite file and once as a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/kameng.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture()
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database's session factory."""
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture()
def settings() -> Settings:
    """Fresh settings (see `engine_settings`)."""
    return engine_settings()
