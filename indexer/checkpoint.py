"""The checkpoint: how far the mirror goes, moved only together with the rows it covers.

`save` is a compare-and-swap: it moves the checkpoint only from the value this indexer last
read. If another indexer moved it meanwhile (a split brain the advisory lock should prevent,
or two indexers on one SQLite file), the transaction fails with `LostWriterError` and nothing
of it is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from indexer.errors import LostWriterError, WrongDatabaseError
from indexer.state import TABLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Checkpoint:
    """The mirror's position.

    Attributes:
        number: The last block applied.
        hash: Its hash.
        finalized: The last block treated as final (the mirror can roll back to it, not below).
    """

    number: int
    hash: str
    finalized: int


def load(conn: Connection, chain_id: int, contract: str) -> Checkpoint | None:
    """The checkpoint of (chain, contract), or None before the first commit.

    Raises:
        WrongDatabaseError: the database mirrors another escrow or chain.
    """
    table = TABLES["checkpoints"]
    rows = conn.execute(select(table)).mappings().all()
    for row in rows:
        if int(row["chain_id"]) != chain_id or row["contract"] != contract:
            raise WrongDatabaseError(
                f"this database mirrors escrow {row['contract']} on chain {row['chain_id']}, "
                f"not {contract} on chain {chain_id}: point the indexer at an empty database"
            )
    if not rows:
        return None
    row = rows[0]
    return Checkpoint(int(row["block_number"]), str(row["block_hash"]), int(row["finalized_block"]))


def save(
    conn: Connection, chain_id: int, contract: str, old: Checkpoint | None, new: Checkpoint
) -> None:
    """Move the checkpoint from `old` to `new` inside the caller's transaction.

    Raises:
        LostWriterError: the stored checkpoint is not `old` any more.
    """
    table = TABLES["checkpoints"]
    values = {"block_number": new.number, "block_hash": new.hash, "finalized_block": new.finalized}
    if old is None:
        try:
            conn.execute(insert(table).values(chain_id=chain_id, contract=contract, **values))
        except IntegrityError as exc:
            raise LostWriterError("another indexer wrote the first checkpoint first") from exc
        return
    result = conn.execute(
        update(table)
        .where(
            table.c.chain_id == chain_id,
            table.c.contract == contract,
            table.c.block_number == old.number,
            table.c.block_hash == old.hash,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise LostWriterError(
            f"the checkpoint moved away from block {old.number} under this indexer; "
            "another indexer is writing this database"
        )
