"""SIGKILL at random points of a catch-up: `kameng index` as a subprocess against anvil and a
SQLite file, killed again and again, then run to the end. The mirror equals a clean run's, row
by row (raw events, decoded tables, blocks, journal, checkpoint)."""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING

import pytest

from bench.workload import IndexProcess, diff_mirrors, dump_mirror, small_workload
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil


def test_sigkill_at_random_points_then_restart_equals_a_clean_run(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=2, orders=60, per_block=6, batch=6)
    head = work.driver.head()
    db = f"sqlite:///{tmp_path / 'mirror.db'}"
    args = [
        "--rpc-url",
        anvil_node.url,
        "--database-url",
        db,
        "--escrow",
        work.escrow,
        "--finality-depth",
        "3",
        "--max-range",
        "1",
        "--concurrency",
        "2",
        "--once",
    ]
    rng = random.Random(int(os.environ.get("KAMENG_KILL_SEED", "20261126")))
    log = tmp_path / "index.log"
    kills = 0
    checkpoints: list[int] = []
    for attempt in range(5):
        if checkpoints and checkpoints[-1] >= head:
            break
        proc = IndexProcess(args, log)
        if attempt == 0:
            # The first kill lands anywhere in start-up: imports, migration, first commits.
            time.sleep(rng.uniform(0.3, 1.5))  # a random instant, not a synchronisation
            proc.kill()
            kills += 1
            continue
        target = rng.randint((checkpoints[-1] if checkpoints else 0) + 1, head)
        reached = None
        while True:
            line = proc.next(timeout=60)
            if line is None:
                break
            if line.get("checkpoint") is not None:
                reached = line["checkpoint"]
                if reached >= target:
                    break
        if line is None:  # it finished before the kill point
            proc.kill()
            assert proc.proc.returncode == 0, log.read_text()[-2000:]
            break
        time.sleep(rng.uniform(0, 0.005))  # land anywhere inside the next transaction
        proc.kill()
        kills += 1
        assert reached is not None
        checkpoints.append(reached)
    final = IndexProcess(args, log)
    while final.next(timeout=120) is not None:
        pass
    final.kill()
    assert final.proc.returncode == 0, log.read_text()[-2000:]
    assert kills >= 3 and len(checkpoints) >= 2, (kills, checkpoints)

    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    with Indexer(anvil_node.url, clean, work.escrow, finality_depth=3) as ix:
        ix.run_once()
    left, right = dump_mirror(db), dump_mirror(clean)
    assert diff_mirrors(left, right) == []
    assert len(left["raw_events"]) == work.total_events()
