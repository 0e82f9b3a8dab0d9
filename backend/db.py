"""Engines, sessions and migrations for the backend's database (the mirror's and ours).

Public API: `make_engine(url)`, `session_factory(engine)`, `migrate(url_or_engine)`,
`bind_escrow(session, chain_id, escrow)`.

SQLite runs in WAL mode with a busy timeout, so the API, the indexer and the delivery agent can
share one file; PostgreSQL connections are checked before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.errors import ConfigError
from backend.models import VaultMeta
from indexer.db import make_engine  # the one database configuration, shared with the indexer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_backend"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def migrate(target: str | Engine) -> None:
    """Bring the database up to date: the indexer's mirror (when the indexer provides
    `indexer.db.migrate`), then the backend's tables (version table ``alembic_version_backend``).

    Args:
        target: A URL or an engine.
    """
    from alembic import command
    from alembic.config import Config

    engine = make_engine(target) if isinstance(target, str) else target
    try:
        from indexer import db as indexer_db
    except ImportError:  # the indexer is optional for the vault's own tables
        indexer_db = None  # type: ignore[assignment,unused-ignore]
    if indexer_db is not None and hasattr(indexer_db, "migrate"):
        indexer_db.migrate(target)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    if isinstance(target, str):
        engine.dispose()


def bind_escrow(session: Session, chain_id: int, escrow: str) -> None:
    """Record (on first use) or check which chain and escrow this database serves.

    Raises:
        ConfigError: the database already serves another chain or escrow.
    """
    query = select(VaultMeta).where(VaultMeta.id == 1)
    meta = session.execute(query).scalar_one_or_none()
    if meta is None:
        try:
            with session.begin_nested():
                session.add(VaultMeta(id=1, chain_id=chain_id, escrow=escrow))
            return
        except IntegrityError:  # another session bound it a moment ago
            meta = session.execute(query).scalar_one()
    if meta.chain_id != chain_id or meta.escrow.lower() != escrow.lower():
        raise ConfigError(
            f"this database serves escrow {meta.escrow} on chain {meta.chain_id}, not {escrow} "
            f"on chain {chain_id}; point KAMENG_DATABASE_URL at another database"
        )


__all__ = ["MIGRATIONS_DIR", "bind_escrow", "make_engine", "migrate", "session_factory"]
