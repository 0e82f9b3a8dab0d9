"""Who writes: one indexer per database, the others wait and take over.

On PostgreSQL the writer holds a session-level advisory lock (`pg_try_advisory_lock`) on the
very connection it writes through. If the writer dies, PostgreSQL drops its session and the
lock with it, and a standby's next `pg_try_advisory_lock` succeeds. If the writer's connection
breaks, its writes fail with it, so a writer can never write without holding the lock.

The key is derived from the chain, the escrow, the database and the schema, so indexers of
different mirrors on one server do not exclude each other.

SQLite has no advisory locks: its own write lock serialises writers, and the checkpoint's
compare-and-swap (`indexer.checkpoint.save`) turns a second writer away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_utils import keccak
from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def lock_key(conn: Connection, chain_id: int, contract: str, role: str = "indexer") -> int:
    """The advisory-lock key of one mirror's `role` (``indexer``, ``keeper``): a signed 64-bit
    hash of the role and where the mirror lives."""
    where = conn.execute(text("SELECT current_database(), current_schema()")).one()
    conn.commit()
    digest = keccak(text=f"kameng-{role}:{chain_id}:{contract.lower()}:{where[0]}:{where[1]}")
    return int.from_bytes(digest[:8], "big", signed=True)


def try_acquire(conn: Connection, key: int) -> bool:
    """Try to take the writer lock on `conn` (PostgreSQL); True when this session holds it."""
    got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
    conn.commit()
    return got


def release(conn: Connection, key: int) -> None:
    """Give the writer lock up (closing the connection does too)."""
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    conn.commit()
