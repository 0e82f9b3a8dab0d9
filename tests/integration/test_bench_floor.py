"""The indexer benchmark's floor writes exactly the indexer's raw-event rows, no fewer, no other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench.indexer import floor
from bench.workload import dump_mirror, small_workload
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil


def test_floor_writes_the_indexers_raw_rows(anvil_node: AnvilNode, tmp_path: Path) -> None:
    work = small_workload(anvil_node.url, rounds=1, orders=40, per_block=20, batch=10)
    head = work.driver.head()
    floor_url = f"sqlite:///{tmp_path / 'floor.db'}"
    mirror_url = f"sqlite:///{tmp_path / 'mirror.db'}"
    count, seconds = floor(anvil_node.url, floor_url, work.escrow, head)
    with Indexer(anvil_node.url, mirror_url, work.escrow) as ix:
        assert ix.run_once() == work.total_events()
    assert count == work.total_events() and seconds > 0
    floor_rows = dump_mirror(floor_url)["raw_events"]
    assert len(floor_rows) == count
    assert floor_rows == dump_mirror(mirror_url)["raw_events"]
