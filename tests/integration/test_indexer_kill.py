"""SIGKILL at random points of a catch-up: `kameng index` as a subprocess against anvil and a
SQLite file, killed again and again, then run to the end. The mirror equals a clean run's, row
by row (raw events, decoded tables, blocks, journal, checkpoint)."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from indexer.runner import Indexer
from indexer.testing import diff_mirrors, dump_mirror, small_workload

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil

#: `kameng` without relying on the console script being on PATH.
KAMENG = [sys.executable, "-c",
          "import sys; from backend.cli import main; sys.argv[0] = 'kameng'; main()"]


class IndexProcess:
    """`kameng index --log-json` in a subprocess, its JSON lines read on a thread."""

    def __init__(self, args: list[str], log: Path) -> None:
        import json

        self._json = json
        self.stderr = log.open("ab")
        self.proc = subprocess.Popen([*KAMENG, "index", "--log-json", *args],
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     env={**os.environ, "COLUMNS": "200"})
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.lines.put(self._json.loads(raw))
            except ValueError:
                continue
        self.lines.put(None)

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next progress line; None when the process closed its output."""
        return self.lines.get(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.stderr.close()


def test_sigkill_at_random_points_then_restart_equals_a_clean_run(anvil_node: AnvilNode,
                                                                 tmp_path: Path) -> None:
    work = small_workload(anvil_node.url, rounds=2, orders=60, per_block=6, batch=6)
    head = work.driver.head()
    db = f"sqlite:///{tmp_path / 'mirror.db'}"
    args = ["--rpc-url", anvil_node.url, "--database-url", db, "--escrow", work.escrow,
            "--finality-depth", "3", "--max-range", "1", "--concurrency", "2", "--once"]
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
