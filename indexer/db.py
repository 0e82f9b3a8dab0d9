"""Database engines and migrations for the mirror.

- `make_engine(url)`: an engine for SQLite (WAL, `synchronous=NORMAL`, a busy timeout) or
  PostgreSQL (psycopg 3). Plain ``postgresql://`` URLs are taken to mean psycopg.
- `private_sqlite_file(url)`: creates a SQLite database file 0600 (its missing directories 0700)
  before SQLite would create it 0644; `make_engine` calls it.
- `migrate(url_or_engine)`: brings the mirror's tables to the newest Alembic revision. Its
  history is kept in ``alembic_version_indexer`` so the backend can keep its own Alembic tree in
  the same database. On PostgreSQL an advisory lock serialises concurrent migrations.

SQLite in WAL mode with ``synchronous=NORMAL`` loses no committed transaction when the process
is killed (only on power loss may the last ones go), which is what the indexer's restart
guarantee needs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from indexer.errors import IndexerError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Alembic's version table for the mirror's history.
VERSION_TABLE = "alembic_version_indexer"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Advisory-lock key that serialises migrations on PostgreSQL ("kameng:migrate" in ASCII).
_MIGRATION_LOCK_KEY = 0x6B616D656E67_6D


def normalize_url(url: str) -> str:
    """Spell a database URL the way SQLAlchemy needs it (psycopg 3 for PostgreSQL).

    Args:
        url: A SQLAlchemy URL, or a plain ``postgresql://`` / ``postgres://`` URL.

    Returns:
        The URL with an explicit driver for PostgreSQL.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, each one this process creates mode 0700
    (whatever the umask); directories that exist are left as they are."""
    missing: list[Path] = []
    while not directory.exists() and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made a moment ago by someone else: theirs
            continue
        d.chmod(0o700)  # mkdir's mode went through the umask


def private_sqlite_file(url: str) -> None:
    """Create the file of a SQLite URL, empty and mode 0600, if it does not exist yet.

    SQLite creates a database file 0666 less the umask (0644 under the usual 022); its -wal,
    -shm and -journal files then take the database file's mode. Created here first, all of them
    are readable by this user only. Missing directories are made 0700 (`private_dirs`); an
    existing file keeps its mode. In-memory databases, ``file:`` URIs and other databases are
    left alone.
    """
    parsed = make_url(normalize_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):
        return
    path = Path(database).expanduser().resolve()
    private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
    finally:
        os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine: the one database configuration of kameng (the mirror's and the
    backend's tables alike; `backend.db` uses this).

    A SQLite file that does not exist yet is created first, mode 0600 in directories made 0700
    (`private_sqlite_file`), so the database and its -wal, -shm and -journal files are readable
    by this user only, whatever the umask.

    Args:
        url: ``sqlite:///path.db`` or a PostgreSQL URL.
        **kwargs: Passed on to `sqlalchemy.create_engine`.

    Returns:
        The engine. For SQLite every connection is in WAL mode with a 30-s busy timeout and
        foreign keys enforced; for PostgreSQL, connections are checked before use.

    Raises:
        IndexerError: the URL names neither SQLite nor PostgreSQL.
    """
    url = normalize_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        private_sqlite_file(url)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    shown = make_url(url).render_as_string(hide_password=True)
    raise IndexerError(
        f"unsupported database {backend!r} in {shown!r}: use sqlite:/// or postgresql://"
    )


def is_postgres(bind: Engine | Connection) -> bool:
    """Whether an engine or connection talks to PostgreSQL."""
    return bind.dialect.name == "postgresql"


def begin_write(conn: Connection) -> None:
    """Make the transaction just begun on `conn` a write transaction from its first statement.

    On SQLite, Python's driver starts transactions lazily, before the first INSERT/UPDATE/
    DELETE only: reads before it, and DDL, would run outside the transaction. ``BEGIN
    IMMEDIATE`` puts everything in it and takes the write lock up front (waiting out other
    writers with the busy timeout instead of failing half-way). PostgreSQL needs nothing.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> Any:
    """The Alembic configuration of the mirror's migrations (for `alembic` commands too).

    Args:
        connection: A connection the migrations should run on.

    Returns:
        An `alembic.config.Config`.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the mirror's schema to `revision` (the newest by default). Safe to call every start.

    Args:
        url_or_engine: A database URL or an engine.
        revision: The Alembic revision to upgrade to.

    Raises:
        IndexerError: the database cannot be reached or a migration failed.
    """
    from alembic import command

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as conn:
            if is_postgres(conn):
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                with conn.begin():
                    begin_write(conn)  # on SQLite too, a migration is all or nothing
                    command.upgrade(alembic_config(conn), revision)
            finally:
                if is_postgres(conn):
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                    conn.commit()
    except IndexerError:
        raise
    except Exception as exc:  # SQLAlchemy and Alembic raise many types; all mean "not migrated"
        raise IndexerError(
            f"could not migrate the mirror's schema at {engine.url!r}: {exc}"
        ) from exc
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def current_revision(url_or_engine: str | Engine) -> str | None:
    """The mirror's current Alembic revision, or None before the first migration.

    Args:
        url_or_engine: A database URL or an engine.

    Returns:
        The revision id.
    """
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
