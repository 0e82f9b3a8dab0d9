"""Bulk writes: COPY on PostgreSQL, executemany on SQLite, and upserts on both.

Rows are dicts of Python values keyed by column name, with uint256 amounts as Python ints.
`BulkWriter.insert` bypasses SQLAlchemy's per-value type processing for speed, so it converts
the `Uint256` columns itself (zero-padded decimal strings on SQLite, as `Uint256` stores them).
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, tuple_

from indexer.models import Uint256

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection


def _uint_sqlite(value: Any) -> Any:
    return None if value is None else str(int(value)).zfill(78)


#: Upserts of at least this many rows go through COPY into a temporary table on PostgreSQL.
_MERGE_THRESHOLD = 200


def uint_columns(table: Table) -> frozenset[str]:
    """Names of a table's `Uint256` columns."""
    return frozenset(c.name for c in table.columns if isinstance(c.type, Uint256))


class _PaddedUints:
    """uint256 to SQLite's stored form, remembering recent values (order ids recur)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self.memo: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        found = self.memo.get(value)
        if found is None:
            if len(self.memo) >= self.size:
                self.memo.clear()
            found = self.memo[value] = str(value).zfill(78)
        return found


def _identity(value: int) -> int:
    return value


_PADDED = _PaddedUints()


class RowFormat:
    """Rows as tuples in one database's stored form; needs no connection (thread-safe)."""

    def __init__(self, postgres: bool) -> None:
        """Format for PostgreSQL (`postgres`) or SQLite."""
        self.postgres = postgres
        #: A uint256 in the stored form of this database (`Uint256`'s own conversion).
        self.uint_format: Callable[[int], Any] = _identity if postgres else _PADDED
        self._uints: dict[tuple[str, tuple[str, ...]], list[int]] = {}

    def tuples(
        self, table: Table, rows: Sequence[dict[str, Any]]
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The columns of `rows[0]` and every row as a tuple in that order, ready to write.

        Every row must have every column of `rows[0]`, with Python values (ints for `Uint256`).
        """
        if not rows:
            return (), []
        columns = tuple(rows[0].keys())
        key = (table.name, columns)
        uints = self._uints.get(key)
        if uints is None:
            names = uint_columns(table) if not self.postgres else frozenset()
            uints = self._uints[key] = [i for i, c in enumerate(columns) if c in names]
        getter = itemgetter(*columns)
        if not uints:
            return columns, [getter(r) for r in rows]
        fmt = self.uint_format
        out = []
        for r in rows:
            values = list(getter(r))
            for i in uints:
                if values[i] is not None:
                    values[i] = fmt(values[i])
            out.append(tuple(values))
        return columns, out


class BulkWriter(RowFormat):
    """Writes many rows at once on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        """Bind to a connection (its transaction must already be open)."""
        super().__init__(conn.dialect.name == "postgresql")
        self.conn = conn
        self._upserts: dict[tuple[str, tuple[str, ...]], str] = {}

    def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (all with the same keys). COPY on PostgreSQL, executemany on SQLite."""
        if rows:
            self.insert_tuples(table, *self.tuples(table, rows))

    def upsert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows, or update every non-key column where the primary key exists."""
        if rows:
            self.upsert_tuples(table, *self.tuples(table, rows))

    def insert_tuples(
        self, table: Table, columns: Sequence[str], tuples: Iterable[Sequence[Any]]
    ) -> None:
        """Insert rows given as tuples in `columns` order, already in the column's stored form.

        On SQLite, `Uint256` values must be zero-padded 78-digit strings (`uint_format`); on
        PostgreSQL, ints.
        """
        driver = self.conn.connection.driver_connection
        assert driver is not None
        names = ", ".join(f'"{c}"' for c in columns)
        if self.postgres:
            self._copy(driver, f'"{table.name}"', names, tuples)
        else:
            marks = ", ".join("?" for _ in columns)
            driver.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', tuples)

    @staticmethod
    def _copy(driver: Any, target: str, names: str, tuples: Iterable[Sequence[Any]]) -> None:
        """COPY rows (psycopg formats each row in C)."""
        with driver.cursor() as cur, cur.copy(f"COPY {target} ({names}) FROM STDIN") as cp:
            for row in tuples:
                cp.write_row(row)

    def upsert_tuples(
        self, table: Table, columns: tuple[str, ...], tuples: list[tuple[Any, ...]]
    ) -> None:
        """Upsert rows given as tuples in `columns` order, in the stored form (`tuples`)."""
        if not tuples:
            return
        key = (table.name, columns)
        sql = self._upserts.get(key)
        if sql is None:
            pk = [c.name for c in table.primary_key.columns]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join(("%s" if self.postgres else "?") for _ in columns)
            updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in pk)
            conflict = ", ".join(f'"{c}"' for c in pk)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            sql = (
                f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}) '
                f"ON CONFLICT ({conflict}) {action}"
            )
            self._upserts[key] = sql
        driver = self.conn.connection.driver_connection
        assert driver is not None
        if self.postgres and len(tuples) >= _MERGE_THRESHOLD:
            self._merge(driver, table, columns, tuples)
        elif self.postgres:
            with driver.cursor() as cur:
                cur.executemany(sql, tuples)
        else:
            driver.executemany(sql, tuples)

    def _merge(
        self, driver: Any, table: Table, columns: tuple[str, ...], tuples: list[tuple[Any, ...]]
    ) -> None:
        """A large upsert on PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT."""
        temp = f'"_kameng_{table.name}"'
        pk = [c.name for c in table.primary_key.columns]
        names = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c not in pk)
        conflict = ", ".join(f'"{c}"' for c in pk)
        with driver.cursor() as cur:
            cur.execute(
                f'CREATE TEMP TABLE IF NOT EXISTS {temp} (LIKE "{table.name}") '
                "ON COMMIT DELETE ROWS"
            )
        self._copy(driver, temp, names, tuples)
        with driver.cursor() as cur:
            cur.execute(
                f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {temp} '
                f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
            )
            cur.execute(f"TRUNCATE {temp}")

    def delete_keys(self, table: Table, keys: Sequence[tuple[Any, ...]]) -> None:
        """Delete the rows with these primary keys."""
        if not keys:
            return
        pk = list(table.primary_key.columns)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            if len(pk) == 1:
                cond = pk[0].in_([k[0] for k in chunk])
            else:
                cond = tuple_(*pk).in_([tuple(k) for k in chunk])
            self.conn.execute(delete(table).where(cond))
