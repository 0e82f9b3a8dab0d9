"""The working set of latest-value rows one transaction reads and writes, with undo capture.

Latest-value tables (orders, listings, disputes, bonds, balances, the platform's settings,
allowed tokens, authorizations, delivery keys, resellers' shop prices) hold each key's current
row. A batch of events loads the rows it will touch in a few bulk SELECTs (`prefetch`), changes
them in memory, and writes the changed ones back with one upsert per table (`flush`).

While blocks can still be reorganised away, every change is journaled: the first time a block
touches a key, the row as it was before (or None when the block creates it) is kept as a
pre-image in ``reorg_undo``. `indexer.reorg` restores pre-images to roll back.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_

from indexer.models import Base

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

    from indexer.bulk import RowFormat

#: Every table of the mirror, by name.
TABLES = Base.metadata.tables

Key = tuple[Any, ...]
Row = dict[str, Any]
#: One bulk write: ("insert" or "upsert", table, columns, rows as tuples in the stored form).
Write = tuple[str, "Table", tuple[str, ...], list[tuple[Any, ...]]]

#: The latest-value tables, by name.
LATEST_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        TABLES["orders"],
        TABLES["listings"],
        TABLES["disputes"],
        TABLES["bonds"],
        TABLES["balances"],
        TABLES["platform_config"],
        TABLES["allowed_tokens"],
        TABLES["authorizations"],
        TABLES["delivery_keys"],
        TABLES["shop_prices"],
    )
}

#: Append-only tables: rows are never changed, and a rollback deletes those above the ancestor.
HISTORY_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        TABLES["raw_events"],
        TABLES["order_events"],
        TABLES["deliveries"],
        TABLES["batches"],
        TABLES["evidence"],
        TABLES["payouts"],
        TABLES["withdrawals"],
    )
}


def primary_key(table: Table) -> tuple[str, ...]:
    """Column names of a table's primary key."""
    return tuple(c.name for c in table.primary_key.columns)


def encode_key(key: Key) -> str:
    """A key as it is stored in ``reorg_undo.row_key``."""
    return json.dumps(list(key), separators=(",", ":"))


def encode_row(row: Row | None) -> str | None:
    """A row as it is stored in ``reorg_undo.pre_image``."""
    return None if row is None else json.dumps(row, separators=(",", ":"), sort_keys=True)


class RowCache:
    """Latest-value rows as last committed, kept between transactions by the writer.

    Valid only while this process is the only writer and every transaction it began was
    committed: the runner clears it on any failure, rollback or change of writer, and tags it
    with the checkpoint it matches. Rows are shared with the working set of the next batch,
    which changes them in place; that is why a failed transaction must clear the cache.
    """

    def __init__(self, limit: int = 400_000) -> None:
        """An empty cache holding at most about `limit` rows (then it starts over)."""
        self.limit = limit
        self.tables: dict[str, dict[Key, Row | None]] = {name: {} for name in LATEST_TABLES}
        self.tag: object = None

    def clear(self) -> None:
        """Forget everything."""
        for rows in self.tables.values():
            rows.clear()
        self.tag = None

    def size(self) -> int:
        """Rows (and known-absent keys) held."""
        return sum(len(rows) for rows in self.tables.values())

    def full(self) -> bool:
        """Whether it holds more than its limit (the owner then clears it when it is safe)."""
        return self.size() > self.limit


@dataclass
class _TableState:
    table: Table
    pk: tuple[str, ...]
    rows: dict[Key, Row | None] = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)


class WorkingSet:
    """Latest-value rows for one transaction, loaded in bulk and written back in bulk."""

    def __init__(self, conn: Connection, *, journal: bool, cache: RowCache | None = None) -> None:
        """Bind to a connection.

        Args:
            conn: The connection, inside the batch's transaction.
            journal: Whether to keep pre-images for `reorg_undo` (blocks not yet final).
            cache: Rows as last committed, to read before the database.
        """
        self.conn = conn
        self.journal = journal
        self.cache = cache
        self.tables = {name: _TableState(t, primary_key(t)) for name, t in LATEST_TABLES.items()}
        #: (block, table, key) -> pre-image, for blocks that may still be reorganised away.
        self.undo: dict[tuple[int, str, Key], Row | None] = {}
        #: Rows a handler read that no handler declared (`indexer.apply.on`): each cost a
        #: SELECT of its own. A test keeps this empty.
        self.late: list[tuple[str, Key]] = []

    def prefetch(self, name: str, keys: Iterable[Key]) -> None:
        """Load the rows of `keys` not loaded yet, in bulk (absent keys are remembered as None)."""
        state = self.tables[name]
        missing = [k for k in set(keys) if k not in state.rows]
        if missing and self.cache is not None:
            cached = self.cache.tables[name]
            still = []
            for k in missing:
                if k in cached:
                    state.rows[k] = cached[k]
                else:
                    still.append(k)
            missing = still
        if not missing:
            return
        table = state.table
        pk_cols = [table.c[c] for c in state.pk]
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            if len(pk_cols) == 1:
                cond = pk_cols[0].in_([k[0] for k in chunk])
            else:
                cond = tuple_(*pk_cols).in_(chunk)
            for row in self.conn.execute(select(table).where(cond)).mappings():
                state.rows[tuple(row[c] for c in state.pk)] = dict(row)
        for k in missing:
            state.rows.setdefault(k, None)

    def get(self, name: str, key: Key) -> Row | None:
        """The current row of `key` (loading it if it was not prefetched), or None."""
        state = self.tables[name]
        if key not in state.rows:
            self.late.append((name, key))
            self.prefetch(name, [key])
        return state.rows[key]

    def put(self, name: str, key: Key, row: Row, block: int) -> None:
        """Replace the row of `key` with `row` (a full row) as of `block`."""
        state = self.tables[name]
        if key not in state.rows:
            self.late.append((name, key))
            self.prefetch(name, [key])
        if self.journal:
            marker = (block, name, key)
            if marker not in self.undo:
                before = state.rows[key]
                self.undo[marker] = None if before is None else copy.copy(before)
        state.rows[key] = row
        state.dirty.add(key)

    def create(self, name: str, key: Key, row: Row, block: int) -> None:
        """Insert the row of a key that cannot exist yet (a new order, listing or dispute)."""
        state = self.tables[name]
        if self.journal:
            marker = (block, name, key)
            if marker not in self.undo:
                before = state.rows.get(key)
                self.undo[marker] = None if before is None else copy.copy(before)
        state.rows[key] = row
        state.dirty.add(key)

    def touch(self, name: str, key: Key, block: int) -> Row | None:
        """The row of `key`, ready to be changed in place as of `block` (None if absent)."""
        row = self.get(name, key)
        if row is None:
            return None
        if self.journal:
            marker = (block, name, key)
            if marker not in self.undo:
                self.undo[marker] = copy.copy(row)
        self.tables[name].dirty.add(key)
        return row

    def publish(self, cache: RowCache) -> None:
        """Make this batch's rows the cache's (once committed, or once queued for commit)."""
        for name, state in self.tables.items():
            cache.tables[name].update(state.rows)

    def collect(self, fmt: RowFormat) -> list[Write]:
        """The writes of this batch's latest-value rows and undo journal, as tuples.

        Called in the thread that applied the events: the tuples are a snapshot, so the rows
        may change again (the next batch) before another thread writes them.
        """
        writes: list[Write] = []
        for state in self.tables.values():
            if not state.dirty:
                continue
            rows = [
                r
                for r in (state.rows[k] for k in sorted(state.dirty, key=_sort_key))
                if r is not None
            ]
            columns, tuples = fmt.tuples(state.table, rows)
            writes.append(("upsert", state.table, columns, tuples))
            state.dirty.clear()
        if self.undo:
            table = TABLES["reorg_undo"]
            columns, tuples = fmt.tuples(
                table,
                [
                    {
                        "block_number": block,
                        "table_name": name,
                        "row_key": encode_key(key),
                        "pre_image": encode_row(row),
                    }
                    for (block, name, key), row in self.undo.items()
                ],
            )
            writes.append(("insert", table, columns, tuples))
            self.undo.clear()
        return writes


def _sort_key(key: Key) -> tuple[str, ...]:
    return tuple(str(k) for k in key)
