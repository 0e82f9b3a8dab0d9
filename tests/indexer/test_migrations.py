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

#: The newest revision.
HEAD = "0006"


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
    assert current_revision(url) == HEAD


def test_migrations_build_the_models_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_migrations_build_the_models_on_postgres(postgres_url: str) -> None:
    _check(postgres_url)


def _round_trip(url: str) -> None:
    """0004 upgrades a mirror holding rows in place (0 and false), and its downgrade drops the
    columns and keeps the rows."""
    from alembic import command

    from indexer.db import alembic_config

    migrate(url, "0003")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name in ("listings", "orders"):
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                conn.execute(table.insert().values({c.name: _filler(c) for c in table.columns}))
        migrate(url)
        with engine.connect() as conn:
            listings = conn.execute(sa.text("SELECT on_chain_from FROM listings")).scalars()
            orders = conn.execute(sa.text("SELECT release_on_chain FROM orders")).scalars()
            assert list(listings) == [0] and [bool(v) for v in orders] == [False]
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert "on_chain_from" not in {c["name"] for c in inspector.get_columns("listings")}
            assert "release_on_chain" not in {c["name"] for c in inspector.get_columns("orders")}
            for name in ("listings", "orders"):
                assert conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar() == 1
        assert current_revision(url) == "0003"
        migrate(url)
        assert current_revision(url) == HEAD
    finally:
        engine.dispose()


def _filler(column: sa.Column[object]) -> object:
    """Some value of the column's type (every column of the two tables is NOT NULL)."""
    if isinstance(column.type, sa.Boolean):
        return True
    if isinstance(column.type, sa.Integer | sa.Numeric):
        return 1
    if isinstance(column.type, sa.LargeBinary):
        return b"1"
    return "1"


def test_0004_round_trips_with_rows_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'r.db'}")


@pytest.mark.postgres
def test_0004_round_trips_with_rows_on_postgres(postgres_url: str) -> None:
    _round_trip(postgres_url)


def _columns(conn: sa.Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def _round_trip_0005(url: str) -> None:
    """0005 upgrades a mirror holding rows in place: the referrer's address kept as the
    reseller, the cut 0, reseller price 0 (stored as every amount is, so SQL comparisons with
    amounts hold); its downgrade brings the referral rates back as 0 and keeps the rows."""
    from alembic import command

    from indexer.db import alembic_config
    from indexer.models import Listing, Order

    migrate(url, "0004")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name in ("listings", "orders", "platform_config"):
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                values = {c.name: _filler(c) for c in table.columns}
                if name == "orders":
                    values.update(referrer="0x" + "ab" * 20, referral_bps=300)
                conn.execute(table.insert().values(values))
        migrate(url)
        with engine.connect() as conn:
            assert "referral_bps" not in _columns(conn, "listings") | _columns(
                conn, "platform_config"
            )
            assert {"reseller", "reseller_cut"} <= _columns(conn, "orders")
            assert not {"referrer", "referral_bps"} & _columns(conn, "orders")
            (order,) = conn.execute(sa.select(Order.reseller, Order.reseller_cut)).all()
            assert (order.reseller, order.reseller_cut) == ("0x" + "ab" * 20, 0)
            assert conn.execute(sa.select(Listing.reseller_price)).scalars().all() == [0]
            zero = sa.select(sa.func.count()).where(Listing.reseller_price == 0)
            assert conn.execute(zero).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM shop_prices")).scalar() == 0
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        with engine.connect() as conn:
            assert "shop_prices" not in sa.inspect(conn).get_table_names()
            assert "reseller_price" not in _columns(conn, "listings")
            for name in ("listings", "platform_config"):
                assert "referral_bps" in _columns(conn, name)
                rates = conn.execute(sa.text(f"SELECT referral_bps FROM {name}")).scalars()
                assert list(rates) == [0]
            referrer = conn.execute(sa.text("SELECT referrer, referral_bps FROM orders")).one()
            assert tuple(referrer) == ("0x" + "ab" * 20, 0)
        assert current_revision(url) == "0004"
        migrate(url)
        assert current_revision(url) == HEAD
    finally:
        engine.dispose()


def test_0005_round_trips_with_rows_on_sqlite(tmp_path: Path) -> None:
    _round_trip_0005(f"sqlite:///{tmp_path / 'r5.db'}")


@pytest.mark.postgres
def test_0005_round_trips_with_rows_on_postgres(postgres_url: str) -> None:
    _round_trip_0005(postgres_url)


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
