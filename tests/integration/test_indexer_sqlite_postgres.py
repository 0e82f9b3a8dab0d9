"""The same event stream mirrored into SQLite and into PostgreSQL gives identical rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench.workload import diff_mirrors, dump_mirror, small_workload
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = [pytest.mark.anvil, pytest.mark.postgres]


def test_sqlite_and_postgres_mirror_identical_rows(
    anvil_node: AnvilNode, postgres_url: str, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=2, orders=120, per_block=30, batch=25)
    sqlite_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    for url in (sqlite_url, postgres_url):
        # Small ranges and a finality depth: catch-up, batching and the journaled tail all run.
        with Indexer(anvil_node.url, url, work.escrow, finality_depth=4, max_range=7) as ix:
            assert ix.run_once() == work.total_events()
    left, right = dump_mirror(sqlite_url), dump_mirror(postgres_url)
    assert diff_mirrors(left, right) == []
    assert len(left["raw_events"]) == work.total_events()
    assert len(left["orders"]) == 240 and left["reorg_undo"]  # the tail was journaled
