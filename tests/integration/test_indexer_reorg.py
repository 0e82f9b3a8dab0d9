"""Reorgs on anvil (`anvil_reorg`): transactions re-ordered, moved and dropped.

After each reorg of depth 1 to 5 the mirror must equal a fresh index of the canonical chain,
row by row, journal included. A reorg deeper than the finality depth stops the indexer with
`DeepReorgError` and leaves the data as it was.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest

from bench.workload import Workload, diff_mirrors, dump_mirror, reorg, small_workload
from contracts.encoding import ZERO_ADDRESS
from indexer.errors import DeepReorgError
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil
FINALITY = 6


def _activity(work: Workload) -> None:
    """Five blocks that each hold escrow transactions: buys, a delivery, a confirmation."""
    listing = work.listings[-1]
    paid = work.buy_block(4, listing)
    work.deliver(paid[:3], 2)
    work.block(
        [work.tx(work.orders[paid[0]].buyer, "confirm", paid[0], work.orders[paid[0]].as_tuple())]
    )
    work.buy_block(2, listing)
    work.block([work.tx(a, "withdraw", ZERO_ADDRESS, a) for a in (work.supplier, work.reseller)])


def _clean(node: str, escrow: str, tmp: Path, name: str) -> dict[str, list[tuple]]:
    fresh = f"sqlite:///{tmp / name}"
    with Indexer(node, fresh, escrow, finality_depth=FINALITY) as ix:
        ix.run_once()
    return dump_mirror(fresh)


def test_reorgs_of_depth_1_to_5_leave_the_canonical_chain(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=1, orders=40, per_block=10, batch=10)
    rng = random.Random(7)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    with Indexer(anvil_node.url, url, work.escrow, finality_depth=FINALITY) as ix:
        ix.run_once()
        for depth in range(1, 6):
            _activity(work)
            ix.run_once()
            head_before = work.driver.head()
            dropped = reorg(work.driver, depth, rng)
            assert work.driver.head() == head_before
            if depth % 2:  # sometimes the new branch is also longer
                work.now = work.driver.timestamp()
                work.block([])
            work.now = work.driver.timestamp()
            ix.run_once()
            assert ix.stats.reorgs == depth, f"depth {depth}: reorg not noticed"
            clean = _clean(anvil_node.url, work.escrow, tmp_path, f"clean{depth}.db")
            assert diff_mirrors(dump_mirror(url), clean) == [], f"depth {depth}, {dropped} dropped"
        assert ix.stats.rolled_back_blocks >= 15


def test_a_reorg_deeper_than_finality_stops_without_touching_the_mirror(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=1, orders=20, per_block=10, batch=10)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    with Indexer(anvil_node.url, url, work.escrow, finality_depth=2) as ix:
        _activity(work)
        ix.run_once()
        before = dump_mirror(url)
        reorg(work.driver, 4, random.Random(3))
        with pytest.raises(DeepReorgError, match="deeper than the finality depth \\(2\\)"):
            ix.run_once()
        assert dump_mirror(url) == before
        with pytest.raises(DeepReorgError):  # and it keeps refusing, rather than guessing
            ix.run_once()


def test_with_finality_zero_any_reorg_is_too_deep(anvil_node: AnvilNode, tmp_path: Path) -> None:
    work = small_workload(anvil_node.url, rounds=1, orders=10, per_block=10, batch=10)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    with Indexer(anvil_node.url, url, work.escrow) as ix:
        ix.run_once()
        reorg(work.driver, 1, random.Random(1))
        with pytest.raises(DeepReorgError):
            ix.run_once()


def test_a_shorter_branch_rolls_the_mirror_back(anvil_node: AnvilNode, tmp_path: Path) -> None:
    """`anvil_rollback`: the chain loses its last blocks; the checkpoint is past the head."""
    work = small_workload(anvil_node.url, rounds=1, orders=10, per_block=10, batch=10)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    with Indexer(anvil_node.url, url, work.escrow, finality_depth=FINALITY) as ix:
        _activity(work)
        ix.run_once()
        work.driver.rpc("anvil_rollback", [3])
        work.driver.nonces.clear()
        ix.run_once()
        assert ix.checkpoint is not None and ix.checkpoint.number == work.driver.head()
        assert ix.stats.reorgs == 1
    clean = _clean(anvil_node.url, work.escrow, tmp_path, "clean.db")
    # The mirror keeps the finalized block it had reached (the head went back, finality does
    # not), so its bookkeeping differs from a fresh run's; every mirrored fact is the same.
    bookkeeping = ("checkpoints", "blocks", "reorg_undo")
    mirrored = dump_mirror(url, skip=bookkeeping)
    assert diff_mirrors(mirrored, {k: v for k, v in clean.items() if k not in bookkeeping}) == []
    assert dump_mirror(url)["checkpoints"][0][2] == clean["checkpoints"][0][2]  # same block
