"""Two indexers on one PostgreSQL database: one writes (it holds the advisory lock), the other
waits; when the writer is killed, the other takes over from the checkpoint and the mirror
ends equal to a clean run's."""

from __future__ import annotations

import signal
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from bench.workload import IndexProcess, diff_mirrors, dump_mirror, small_workload
from indexer.runner import Indexer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = [pytest.mark.anvil, pytest.mark.postgres]


@contextmanager
def _schema(postgres_url: str) -> Iterator[str]:
    """Another empty schema on the same server (the fixture gives one)."""
    base = postgres_url.split("?")[0]
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def _until(proc: IndexProcess, want: Any, timeout: float = 60) -> dict[str, Any]:
    """Read progress lines until one satisfies `want`."""
    while True:
        line = proc.next(timeout=timeout)
        assert line is not None, "the indexer exited"
        if want(line):
            return line


def _lock_holders(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar()
                or 0
            )
    finally:
        engine.dispose()


def test_standby_takes_over_when_the_writer_is_killed(
    anvil_node: AnvilNode, postgres_url: str, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=2, orders=60, per_block=6, batch=6)
    args = [
        "--rpc-url",
        anvil_node.url,
        "--database-url",
        postgres_url,
        "--escrow",
        work.escrow,
        "--finality-depth",
        "3",
        "--max-range",
        "1",
        "--poll-interval",
        "0.05",
    ]
    first = IndexProcess(args, tmp_path / "first.log")
    second: IndexProcess | None = None
    try:
        _until(first, lambda line: line.get("checkpoint") is not None)
        second = IndexProcess(args, tmp_path / "second.log")
        _until(second, lambda line: line["mode"] == "standby")
        # The standby writes nothing while the writer lives; the writer keeps going.
        seen = _until(first, lambda line: line.get("checkpoint") is not None)
        assert seen["mode"] in ("catch-up", "follow")
        assert second.lines.empty()
        before = _lock_holders(postgres_url)
        first.kill()
        # New blocks while nobody writes; the standby must take over and index them.
        work.buy_block(3, work.listings[-1])
        work.buy_block(2, work.listings[-1])
        head = work.driver.head()
        _until(second, lambda line: line["mode"] == "writer")
        _until(second, lambda line: (line.get("checkpoint") or 0) >= head)
        assert before >= 1
        assert _lock_holders(postgres_url) >= 1
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=30) == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()
    with _schema(postgres_url) as clean:
        with Indexer(anvil_node.url, clean, work.escrow, finality_depth=3) as ix:
            ix.run_once()
        assert diff_mirrors(dump_mirror(postgres_url), dump_mirror(clean)) == []
    assert len(dump_mirror(postgres_url)["raw_events"]) == work.total_events()


def test_a_second_indexer_in_process_stays_standby(
    anvil_node: AnvilNode, postgres_url: str
) -> None:
    """The same rule between two `Indexer` objects: the lock, then the hand-over on close."""
    work = small_workload(anvil_node.url, rounds=1, orders=10, per_block=10, batch=10)
    one = Indexer(anvil_node.url, postgres_url, work.escrow)
    two = Indexer(anvil_node.url, postgres_url, work.escrow)
    try:
        assert one.run_once() == work.total_events()
        work.buy_block(2, work.listings[-1])
        assert two.run_once() == 0 and not two.is_writer
        one.close()  # gives the lock up
        assert two.run_once() == 2 and two.is_writer
    finally:
        one.close()
        two.close()
