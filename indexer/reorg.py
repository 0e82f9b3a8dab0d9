"""Reorganisations: find the common ancestor, roll the mirror back to it, prune what is final.

The mirror keeps, for every block above its finalized block, the block's hash and parent hash
(``blocks``) and the pre-images of the latest-value rows the block changed (``reorg_undo``).
When the chain's block at the checkpoint no longer has the stored hash, `find_ancestor` walks
the stored blocks down to the newest one the chain still has; `rollback` then, in one
transaction with the checkpoint, restores pre-images, deletes history rows, raw events, blocks
and journal entries above it. Events from the new branch are applied afterwards as usual.

If no stored block at or above the finalized block is still canonical, the reorg is deeper than
the finality depth and `DeepReorgError` stops the indexer without touching the data.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, select

from indexer.bulk import BulkWriter
from indexer.errors import DeepReorgError
from indexer.state import HISTORY_TABLES, LATEST_TABLES, TABLES, primary_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from indexer.source import Header

log = logging.getLogger("kameng.indexer")


def stored_blocks(conn: Connection, chain_id: int, low: int, high: int) -> list[tuple[int, str]]:
    """(number, hash) of stored blocks in ``[low, high]``, newest first."""
    blocks = TABLES["blocks"]
    rows = conn.execute(
        select(blocks.c.number, blocks.c.hash)
        .where(blocks.c.chain_id == chain_id, blocks.c.number >= low, blocks.c.number <= high)
        .order_by(blocks.c.number.desc())
    ).all()
    return [(int(n), str(h)) for n, h in rows]


def find_ancestor(
    conn: Connection,
    chain_id: int,
    checkpoint: int,
    finalized: int,
    header: Callable[[int], Header | None],
    finality_depth: int,
) -> tuple[int, str]:
    """The newest stored block, at or above the finalized block, that the chain still has.

    Args:
        conn: A connection to the mirror.
        chain_id: The chain.
        checkpoint: The mirror's checkpoint block.
        finalized: The mirror's finalized block (it cannot roll back below it).
        header: Fetches the chain's header of a block number (None if there is none).
        finality_depth: For the error message.

    Returns:
        The ancestor's number and hash.

    Raises:
        DeepReorgError: even the finalized block is no longer canonical.
    """
    lowest: tuple[int, str] | None = None
    lowest_chain: str | None = None
    for number, stored_hash in stored_blocks(conn, chain_id, finalized, checkpoint):
        current = header(number)
        if current is not None and current.hash == stored_hash:
            return number, stored_hash
        lowest = (number, stored_hash)
        lowest_chain = current.hash if current is not None else None
    if lowest is None:
        lowest = (finalized, "(not stored)")
    raise DeepReorgError(
        block=lowest[0],
        stored_hash=lowest[1],
        chain_hash=lowest_chain,
        finality_depth=finality_depth,
    )


def rollback(conn: Connection, chain_id: int, ancestor: int) -> dict[str, int]:
    """Undo every block above `ancestor`, inside the caller's transaction.

    Args:
        conn: The connection, in the transaction that also moves the checkpoint.
        chain_id: The chain.
        ancestor: The block to roll back to (it stays applied).

    Returns:
        Rows deleted or restored, by table.
    """
    counts: dict[str, int] = {}
    undo = TABLES["reorg_undo"]
    entries = conn.execute(
        select(undo.c.block_number, undo.c.table_name, undo.c.row_key, undo.c.pre_image)
        .where(undo.c.block_number > ancestor)
        .order_by(undo.c.block_number)
    ).all()
    # For each key, the pre-image of the lowest block above the ancestor is its state there.
    restore: dict[tuple[str, str], str | None] = {}
    for _block, table_name, row_key, pre_image in entries:
        restore.setdefault((table_name, row_key), pre_image)
    writer = BulkWriter(conn)
    by_table: dict[str, list[tuple[tuple[Any, ...], str | None]]] = {}
    for (table_name, row_key), pre_image in restore.items():
        by_table.setdefault(table_name, []).append((tuple(json.loads(row_key)), pre_image))
    for table_name, items in by_table.items():
        table = LATEST_TABLES[table_name]
        writer.delete_keys(table, [k for k, _ in items])
        images = [json.loads(p) for _, p in items if p is not None]
        if images:
            pk = primary_key(table)
            images.sort(key=lambda r: tuple(str(r[c]) for c in pk))
            writer.upsert(table, images)
        counts[table_name] = len(items)
    conn.execute(delete(undo).where(undo.c.block_number > ancestor))
    for name, table in HISTORY_TABLES.items():
        result = conn.execute(delete(table).where(table.c.block_number > ancestor))
        counts[name] = result.rowcount
    blocks = TABLES["blocks"]
    result = conn.execute(
        delete(blocks).where(and_(blocks.c.chain_id == chain_id, blocks.c.number > ancestor))
    )
    counts["blocks"] = result.rowcount
    log.warning(
        "rolled back to block %d: %s",
        ancestor,
        ", ".join(f"{k} {v}" for k, v in counts.items() if v),
    )
    return counts


def prune(conn: Connection, chain_id: int, old_finalized: int, new_finalized: int) -> None:
    """Forget what became final: undo entries up to `new_finalized`, and blocks without escrow
    events below it (the finalized block itself is kept: it anchors the next reorg check)."""
    if new_finalized <= old_finalized:
        return
    undo = TABLES["reorg_undo"]
    conn.execute(delete(undo).where(undo.c.block_number <= new_finalized))
    blocks = TABLES["blocks"]
    conn.execute(
        delete(blocks).where(
            blocks.c.chain_id == chain_id,
            blocks.c.number >= old_finalized,
            blocks.c.number < new_finalized,
            blocks.c.has_events.is_(False),
        )
    )
