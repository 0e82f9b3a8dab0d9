"""Alembic environment of the backend's tables (version table ``alembic_version_backend``).

Only the tables in `backend.models` are managed here; the indexer's mirror has its own history.
Run through `backend.db.migrate`, which hands over a connection.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from backend.models import Base

VERSION_TABLE = "alembic_version_backend"
config = context.config


def _include_name(name: str | None, type_: str, _parent: Any) -> bool:
    if type_ == "table":
        return name in Base.metadata.tables
    return True


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or run through backend.db.migrate")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
