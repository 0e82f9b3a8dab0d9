"""Bulk writes: COPY on PostgreSQL, executemany on SQLite, and upserts on both.

Rows are dicts of Python values keyed by column name, with uint256 amounts as Python ints.
`BulkWriter.insert` bypasses SQLAlchemy's per-value type processing for speed, so it converts
the `Uint256` columns itself (zero-padded decimal strings on SQLite, as `Uint256` stores them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from indexer.models import Uint256

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection


def _uint_sqlite(value: Any) -> Any:
    return None if value is None else str(int(value)).zfill(78)


def uint_columns(table: Table) -> frozenset[str]:
    """Names of a table's `Uint256` columns."""
    return frozenset(c.name for c in table.columns if isinstance(c.type, Uint256))


class BulkWriter:
    """Writes many rows at once on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        """Bind to a connection (its transaction must already be open)."""
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self._converters: dict[tuple[str, tuple[str, ...]], list[Callable[[Any], Any] | None]] = {}

    def _row_converters(self, table: Table, columns: tuple[str, ...]
                        ) -> list[Callable[[Any], Any] | None]:
        key = (table.name, columns)
        found = self._converters.get(key)
        if found is None:
            uints = uint_columns(table)
            found = [_uint_sqlite if (not self.postgres and c in uints) else None for c in columns]
            self._converters[key] = found
        return found

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (all with the same keys). COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        columns = tuple(rows[0].keys())
        converters = self._row_converters(table, columns)
        if any(converters):
            tuples: Iterable[tuple[Any, ...]] = (
                tuple(v if f is None else f(v) for f, v in zip(converters, r.values(), strict=True))
                for r in rows
            )
        else:
            tuples = (tuple(r.values()) for r in rows)
        self.insert_tuples(table, columns, tuples)

    def insert_tuples(self, table: Table, columns: Sequence[str],
                      tuples: Iterable[Sequence[Any]]) -> None:
        """Insert rows given as tuples in `columns` order, already in the column's stored form.

        On SQLite, `Uint256` values must be zero-padded 78-digit strings; on PostgreSQL, ints.
        """
        driver = self.conn.connection.driver_connection
        assert driver is not None
        names = ", ".join(f'"{c}"' for c in columns)
        if self.postgres:
            sql = f'COPY "{table.name}" ({names}) FROM STDIN'
            with driver.cursor() as cur, cur.copy(sql) as cp:
                for row in tuples:
                    cp.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            driver.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', tuples)

    def upsert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows, or update every non-key column where the primary key exists."""
        if not rows:
            return
        pk = [c.name for c in table.primary_key.columns]
        stmt = pg_insert(table) if self.postgres else sqlite_insert(table)
        columns = list(rows[0].keys())
        updates = {c: stmt.excluded[c] for c in columns if c not in pk}
        if updates:
            stmt = stmt.on_conflict_do_update(index_elements=pk, set_=updates)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=pk)
        self.conn.execute(stmt, list(rows))

    def delete_keys(self, table: Table, keys: Sequence[tuple[Any, ...]]) -> None:
        """Delete the rows with these primary keys."""
        if not keys:
            return
        pk = list(table.primary_key.columns)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            if len(pk) == 1:
                cond = pk[0].in_([k[0] for k in chunk])
            else:
                cond = tuple_(*pk).in_([tuple(k) for k in chunk])
            self.conn.execute(delete(table).where(cond))
