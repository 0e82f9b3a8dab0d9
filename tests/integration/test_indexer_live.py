"""Following the head: `run_forever` in a thread keeps the mirror at most one block behind,
and follows a reorg that happens while it runs."""

from __future__ import annotations

import random
import threading
import time
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from bench.workload import diff_mirrors, dump_mirror, reorg, small_workload, wait_until
from indexer.db import make_engine
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil


def test_run_forever_follows_the_head_and_a_live_reorg(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=1, orders=20, per_block=10, batch=10)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    ix = Indexer(anvil_node.url, url, work.escrow, finality_depth=4, poll_interval=0.02)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ix.run_forever(stop)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    engine = make_engine(url)

    def checkpoint() -> int:
        with engine.connect() as conn:
            try:
                value = conn.execute(sa.text("SELECT block_number FROM checkpoints")).scalar()
            except sa.exc.OperationalError:  # the first migration is still running
                return -1
        return -1 if value is None else int(value)

    try:
        wait_until(lambda: checkpoint() == work.driver.head(), 30, "catch-up")
        lags = []
        for _ in range(6):
            paid = work.buy_block(2, work.listings[-1])  # mines one block
            head = work.driver.head()
            started = time.monotonic()
            wait_until(lambda head=head: checkpoint() >= head, 5, f"block {head}")
            lags.append(time.monotonic() - started)
            with engine.connect() as conn:
                found = conn.execute(
                    sa.text("SELECT count(*) FROM order_events WHERE block_number = :b"),
                    {"b": head},
                ).scalar()
            assert found == len(paid)
        assert max(lags) < 1.0, lags  # well within one 1-s block
        reorg(work.driver, 2, random.Random(5))
        work.now = work.driver.timestamp()
        work.block([])
        wait_until(
            lambda: ix.stats.reorgs >= 1 and checkpoint() == work.driver.head(),
            10,
            "the reorg to be followed",
        )
    finally:
        stop.set()
        thread.join(10)
        ix.close()
        engine.dispose()
    assert not errors, errors
    assert not thread.is_alive()
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    with Indexer(anvil_node.url, clean, work.escrow, finality_depth=4) as fresh:
        fresh.run_once()
    assert diff_mirrors(dump_mirror(url), dump_mirror(clean)) == []
