"""The indexer: catch up to the chain, follow its head, survive reorgs, kills and faults.

Usage (the backend runs it in a thread)::

    indexer = Indexer("http://127.0.0.1:8545", "sqlite:///kameng.db", escrow, finality_depth=12)
    indexer.run_once()                      # index up to the head; returns events applied
    stop = threading.Event()
    threading.Thread(target=indexer.run_forever, args=(stop,), daemon=True).start()
    ...
    stop.set()

How one pass (`run_once`) goes:

1. Take the writer role (a PostgreSQL advisory lock; a standby returns 0 and tries again later).
2. Read the checkpoint; if the chain's block at the checkpoint has another hash, find the common
   ancestor among the stored unfinalized blocks and roll back to it (`indexer.reorg`).
3. Catch up over the final blocks (up to head - finality depth) with concurrent, adaptive
   `eth_getLogs` ranges, committing in order: each commit holds its rows and the checkpoint.
4. Follow the unfinalized blocks: fetch their headers, check that each one's parent hash is the
   previous block's hash, apply their logs while journaling undo pre-images, and commit with
   the checkpoint at the head.

A kill at any instant loses at most the transaction in flight; the next start resumes from the
checkpoint, and the rows come out the same as a run that was never interrupted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from indexer import checkpoint as cp_store
from indexer.apply import Applier, Prepared
from indexer.bulk import BulkWriter, RowFormat
from indexer.checkpoint import Checkpoint
from indexer.db import begin_write, is_postgres, make_engine, migrate
from indexer.errors import (
    ChainMovedError,
    DeepReorgError,
    IndexerError,
    LostWriterError,
    RpcError,
    WrongDatabaseError,
)
from indexer.fetch import (
    FetchedRange,
    LogFetcher,
    RangePipeline,
    RangeSizer,
    Retrier,
    RetryPolicy,
    StopRequested,
)
from indexer.lock import lock_key, release, try_acquire
from indexer.reorg import find_ancestor, prune, rollback
from indexer.source import source_for
from indexer.state import RowCache

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import Connection

    from contracts.chain import Chain
    from indexer.source import Header, Source

log = logging.getLogger("kameng.indexer")


@dataclass(frozen=True)
class Progress:
    """A report after each commit (and while waiting as a standby).

    Attributes:
        mode: ``catch-up``, ``follow``, ``reorg``, ``standby`` (another indexer writes) or
            ``writer`` (this one took over).
        checkpoint: The last block applied (None before the first commit).
        head: The chain's head when the pass began.
        events: Events applied by this indexer since it was created.
        elapsed: Seconds since this indexer was created.
    """

    mode: str
    checkpoint: int | None
    head: int | None
    events: int
    elapsed: float


@dataclass
class Stats:
    """Counters for monitoring and tests."""

    events: int = 0
    commits: int = 0
    reorgs: int = 0
    rolled_back_blocks: int = 0


class _CommitThread:
    """Commits prepared batches in order, on the writer's connection, in its own thread."""

    def __init__(self, indexer: Indexer, conn: Connection, depth: int = 2) -> None:
        self.indexer = indexer
        self.conn = conn
        self.queue: queue.Queue[tuple[Prepared, Checkpoint | None, Checkpoint] | None] = (
            queue.Queue(maxsize=depth)
        )
        self.error: BaseException | None = None
        self.aborted = False
        self.thread = threading.Thread(target=self._run, name="kameng-commit", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                if self.error is None and not self.aborted:
                    self.indexer._write_prepared(self.conn, *item)
            except BaseException as exc:  # handed to the applying thread by `_check`
                self.error = exc
            finally:
                self.queue.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, prepared: Prepared, old: Checkpoint | None, new: Checkpoint) -> None:
        """Queue a batch (waits while the queue is full).

        Raises:
            BaseException: the commit of an earlier batch failed.
        """
        while True:
            self._check()
            try:
                self.queue.put((prepared, old, new), timeout=0.05)
                return
            except queue.Full:
                continue

    def drain(self) -> None:
        """Wait until everything queued is committed.

        Raises:
            BaseException: a commit failed.
        """
        self.queue.join()
        self._check()

    def finish(self) -> None:
        """Commit what is queued, stop the thread.

        Raises:
            BaseException: a commit failed.
        """
        self.queue.put(None)
        self.thread.join()
        self._check()

    def abort(self) -> None:
        """Drop what is queued (uncommitted), stop the thread."""
        self.aborted = True
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


class Indexer:
    """Mirrors one escrow's events into one database. One writer per database."""

    def __init__(
        self,
        chain_or_rpc_url: Chain | str | Source,
        database_url: str | Engine,
        escrow_address: str,
        start_block: int = 0,
        finality_depth: int = 0,
        *,
        concurrency: int | None = None,
        initial_range: int | None = None,
        max_range: int | None = None,
        target_logs: int = 5000,
        max_batch_logs: int = 20_000,
        poll_interval: float = 0.1,
        rpc_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        auto_migrate: bool = True,
    ) -> None:
        """Configure an indexer; nothing is contacted until the first pass.

        Args:
            chain_or_rpc_url: A node URL, a `contracts.chain.Chain` (embedded or RPC), or a Source.
            database_url: A SQLite or PostgreSQL URL, or an engine.
            escrow_address: The CodeEscrow contract to mirror.
            start_block: Where to start on an empty database (the escrow's deployment block, or
                earlier; events before it are never seen).
            finality_depth: Blocks below the head that can still be reorganised away. 0 on the
                embedded chain; a reorg deeper than this stops the indexer with an error.
            concurrency: `eth_getLogs` requests in flight during catch-up (default: the source's).
            initial_range: First `eth_getLogs` block range (default: the source's).
            max_range: Largest block range (default: the source's).
            target_logs: Logs per `eth_getLogs` answer the range sizer aims for.
            max_batch_logs: Most logs committed in one transaction during catch-up.
            poll_interval: Seconds between head polls in `run_forever`.
            rpc_timeout: Seconds before an RPC request counts as timed out.
            retry: How transient RPC faults are retried.
            on_progress: Called after each commit with a `Progress`.
            auto_migrate: Bring the schema to the newest revision before the first pass.
        """
        self.source: Source = source_for(chain_or_rpc_url, timeout=rpc_timeout)
        self._own_engine = not isinstance(database_url, Engine)
        self.engine: Engine = (
            make_engine(database_url) if isinstance(database_url, str) else database_url
        )
        self.address = to_checksum_address(escrow_address)
        self.start_block = max(0, start_block)
        self.finality_depth = max(0, finality_depth)
        self.concurrency = max(
            1, min(concurrency or self.source.max_concurrency, self.source.max_concurrency)
        )
        self.max_batch_logs = max_batch_logs
        self.poll_interval = poll_interval
        self.on_progress = on_progress
        self.auto_migrate = auto_migrate
        self.stats = Stats()
        self.retrier = Retrier(retry or RetryPolicy())
        self.sizer = RangeSizer(
            initial_range or self.source.initial_range,
            max_range or self.source.max_range,
            target_logs,
        )
        self.fetcher = LogFetcher(self.source, self.address, self.sizer, self.retrier)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._writer = False
        self._lock_key: int | None = None
        self._chain_id: int | None = None
        self._applier: Applier | None = None
        self._migrated = False
        self._started = time.monotonic()
        self._head: int | None = None
        self._cache = RowCache()
        self._last_mode = ""
        self.checkpoint: Checkpoint | None = None

    # ------------------------------------------------------------ public

    @property
    def chain_id(self) -> int:
        """The chain id (asked of the node once)."""
        if self._chain_id is None:
            self._chain_id = self.retrier.call(self.source.chain_id, "eth_chainId")
        return self._chain_id

    @property
    def is_writer(self) -> bool:
        """Whether this indexer holds the writer role."""
        return self._writer

    def run_once(self) -> int:
        """Index up to the chain's current head.

        Returns:
            Events applied (0 when up to date, or when another indexer is the writer).

        Raises:
            DeepReorgError: a reorg went deeper than the finality depth; nothing was changed.
            WrongDatabaseError: the database mirrors another escrow or chain.
            RpcError: the node kept failing past the retry policy.
            LostWriterError: another indexer moved the checkpoint (this one stepped down).
            IndexerError: the database failed.
        """
        self._prepare()
        try:
            if not self._ensure_writer():
                if self._last_mode != "standby":
                    self._emit("standby")
                return 0
            return self._sync()
        except LostWriterError:
            self._drop_connection()
            raise
        except DBAPIError as exc:
            self._drop_connection()
            raise IndexerError(f"database error while indexing: {exc}") from exc

    def run_forever(self, stop: threading.Event, poll_interval: float | None = None) -> None:
        """Index and follow the head until `stop` is set.

        Faults of the node and the database are logged and retried; a standby keeps trying to
        take over. Between passes the head is polled every `poll_interval` seconds, and a new
        pass starts as soon as the newest block changes (number or hash).

        Raises:
            DeepReorgError: a reorg went deeper than the finality depth.
            WrongDatabaseError: the database mirrors another escrow or chain.
        """
        interval = self.poll_interval if poll_interval is None else poll_interval
        self.retrier.stop = stop
        failures = 0
        while not stop.is_set():
            try:
                self.run_once()
                failures = 0
                if self._writer:
                    self._wait_for_new_block(stop, interval)
                else:
                    stop.wait(interval)
            except (DeepReorgError, WrongDatabaseError):
                raise
            except StopRequested:
                break
            except (RpcError, ChainMovedError, LostWriterError, IndexerError) as exc:
                failures += 1
                wait = min(10.0, interval * 2 ** min(failures, 6))
                log.warning("indexer pass failed (%s); next try in %.1f s", exc, wait)
                stop.wait(wait)

    def close(self) -> None:
        """Give up the writer role, close connections and threads."""
        self._drop_connection()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._own_engine:
            self.engine.dispose()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _prepare(self) -> None:
        if not self._migrated:
            if self.auto_migrate:
                migrate(self.engine)
            self._migrated = True
        if self._applier is None:
            self._applier = Applier(self.chain_id, self.address)
        if self._executor is None and self.concurrency > 1:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kameng-logs")

    def _ensure_writer(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect()
            self._writer = False
        if self._writer:
            return True
        if is_postgres(self._conn):
            if self._lock_key is None:
                self._lock_key = lock_key(self._conn, self.chain_id, self.address)
            self._writer = try_acquire(self._conn, self._lock_key)
            if self._writer:
                log.info("took the writer lock of this mirror")
                self._emit("writer")
        else:
            self._writer = True
        return self._writer

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        was_writer, self._writer = self._writer, False
        self._cache.clear()
        if conn is None:
            return
        try:
            if was_writer and self._lock_key is not None and is_postgres(conn):
                conn.rollback()
                release(conn, self._lock_key)
        except DBAPIError:
            pass  # the session is gone, and the lock with it
        finally:
            try:
                conn.close()
            except DBAPIError:
                conn.invalidate()

    def _emit(self, mode: str) -> None:
        self._last_mode = mode
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    mode=mode,
                    checkpoint=self.checkpoint.number if self.checkpoint else None,
                    head=self._head,
                    events=self.stats.events,
                    elapsed=time.monotonic() - self._started,
                )
            )

    def _header(self, number: int) -> Header | None:
        return self.retrier.call(lambda: self.source.header(number), f"header {number}")

    def _wait_for_new_block(self, stop: threading.Event, interval: float) -> None:
        seen = self.checkpoint
        while not stop.is_set():
            latest = self.retrier.call(self.source.latest, "latest block")
            if seen is None or latest.number != seen.number or latest.hash != seen.hash:
                return
            stop.wait(interval)

    # ------------------------------------------------------------ one pass

    def _sync(self) -> int:
        conn = self._conn
        assert conn is not None and self._applier is not None
        with conn.begin():
            cp = cp_store.load(conn, self.chain_id, self.address)
        self.checkpoint = cp
        if self._cache.tag != cp:
            self._cache.clear()
        head = self.retrier.call(self.source.head, "eth_blockNumber")
        self._head = head
        applied = 0
        if cp is not None:
            current = self._header(cp.number) if cp.number <= head else None
            if current is None or current.hash != cp.hash:
                cp = self._reorg(cp)
        start = cp.number + 1 if cp is not None else self.start_block
        final = head - self.finality_depth
        if start <= final:
            cp, n = self._catch_up(cp, start, final)
            applied += n
            if self.retrier.stop.is_set():
                return applied
        if (cp.number + 1 if cp is not None else self.start_block) <= head:
            cp, n = self._follow(cp, head)
            applied += n
        return applied

    def _commit(
        self,
        conn: Connection,
        old: Checkpoint | None,
        new: Checkpoint,
        ranges: list[FetchedRange],
        *,
        journal: bool,
        extra: list[Header] | None = None,
    ) -> int:
        assert self._applier is not None
        try:
            with conn.begin():
                begin_write(conn)
                result = self._applier.apply(
                    conn, ranges, journal=journal, extra_headers=extra or (), cache=self._cache
                )
                old_final = old.finalized if old is not None else self.start_block - 1
                prune(conn, self.chain_id, old_final, new.finalized)
                cp_store.save(conn, self.chain_id, self.address, old, new)
        except BaseException:
            self._cache.clear()  # the batch changed cached rows in place
            raise
        result.publish(self._cache)
        if self._cache.full():
            self._cache.clear()
        self._cache.tag = new
        self.checkpoint = new
        self.stats.events += result.events
        self.stats.commits += 1
        return result.events

    def _catch_up(self, cp: Checkpoint | None, start: int, end: int) -> tuple[Checkpoint, int]:
        """Apply the final blocks ``[start, end]``: concurrent ranges, committed in order.

        With a thread pool (a node over HTTP), three stages overlap: ranges download on the
        pool, this thread decodes and applies one batch in memory, and a commit thread writes
        the previous one. Each commit still holds exactly its batch's rows and checkpoint.
        """
        conn = self._conn
        assert conn is not None and self._applier is not None
        pipeline = RangePipeline(self.fetcher, self._executor, self.concurrency)
        applied = 0
        if self._executor is None:
            for group in pipeline.batches(start, end, self.max_batch_logs):
                last = group[-1]
                new = Checkpoint(last.end, last.headers[last.end].hash, last.end)
                applied += self._commit(conn, cp, new, group, journal=False)
                cp = new
                self._emit("catch-up")
                if self.retrier.stop.is_set():
                    break
            assert cp is not None
            return cp, applied
        fmt = RowFormat(is_postgres(conn))
        reader = self.engine.connect()
        committer = _CommitThread(self, conn)
        try:
            for group in pipeline.batches(start, end, self.max_batch_logs):
                if self._cache.full():
                    committer.drain()  # nothing in flight may depend on what is evicted
                    self._cache.clear()
                last = group[-1]
                new = Checkpoint(last.end, last.headers[last.end].hash, last.end)
                with reader.begin():
                    prepared = self._applier.prepare(
                        reader, group, journal=False, fmt=fmt, cache=self._cache
                    )
                prepared.publish(self._cache)  # the next batch reads these, committed or not
                committer.submit(prepared, cp, new)
                applied += prepared.events
                cp = new
                if self.retrier.stop.is_set():
                    break  # what is queued is still committed
            committer.finish()
        except BaseException:
            self._cache.clear()
            committer.abort()
            raise
        finally:
            reader.close()
        self._cache.tag = cp
        assert cp is not None
        return cp, applied

    def _write_prepared(
        self, conn: Connection, prepared: Prepared, old: Checkpoint | None, new: Checkpoint
    ) -> None:
        """Commit one prepared catch-up batch with its checkpoint (on the commit thread)."""
        with conn.begin():
            begin_write(conn)
            Applier.write(BulkWriter(conn), prepared)
            old_final = old.finalized if old is not None else self.start_block - 1
            prune(conn, self.chain_id, old_final, new.finalized)
            cp_store.save(conn, self.chain_id, self.address, old, new)
        self.checkpoint = new
        self.stats.events += prepared.events
        self.stats.commits += 1
        self._emit("catch-up")

    def _follow(self, cp: Checkpoint | None, head: int) -> tuple[Checkpoint | None, int]:
        """Apply the unfinalized blocks up to `head`, checking every parent hash."""
        conn = self._conn
        assert conn is not None
        for _ in range(8):
            lo = cp.number + 1 if cp is not None else self.start_block
            if lo > head:
                return cp, 0
            headers = [self.fetcher.header(n) for n in range(lo, head + 1)]
            if cp is not None and headers[0].parent_hash != cp.hash:
                cp = self._reorg(cp)
                continue
            if any(b.parent_hash != a.hash for a, b in zip(headers, headers[1:], strict=False)):
                log.info("blocks %d..%d changed while fetched; fetching again", lo, head)
                continue
            logs = self.fetcher.logs(lo, head)
            by_number = {h.number: h for h in headers}
            if any(
                str(e["blockHash"]).lower() != by_number[int(e["blockNumber"], 16)].hash
                for e in logs
            ):
                log.info("logs of %d..%d came from another branch; fetching again", lo, head)
                continue
            wanted = {int(e["blockNumber"], 16) for e in logs} | {head}
            fetched = FetchedRange(lo, head, logs, {n: by_number[n] for n in wanted})
            old_final = cp.finalized if cp is not None else lo - 1
            new = Checkpoint(
                head, by_number[head].hash, max(old_final, min(head, head - self.finality_depth))
            )
            applied = self._commit(conn, cp, new, [fetched], journal=True, extra=headers)
            self._emit("follow")
            return new, applied
        raise ChainMovedError(f"the chain kept changing under blocks {lo}..{head}")

    def _reorg(self, cp: Checkpoint) -> Checkpoint:
        """Roll back to the newest stored block the chain still has."""
        conn = self._conn
        assert conn is not None
        with conn.begin():
            begin_write(conn)
            number, block_hash = find_ancestor(
                conn, self.chain_id, cp.number, cp.finalized, self._header, self.finality_depth
            )
            rollback(conn, self.chain_id, number)
            new = Checkpoint(number, block_hash, cp.finalized)
            cp_store.save(conn, self.chain_id, self.address, cp, new)
        self._cache.clear()
        self.checkpoint = new
        self.stats.reorgs += 1
        self.stats.rolled_back_blocks += cp.number - number
        log.warning("reorg: rolled back from block %d to %d", cp.number, number)
        self._emit("reorg")
        return new

    def status(self) -> dict[str, Any]:
        """A snapshot for health checks: writer role, checkpoint, head and counters."""
        return {
            "writer": self._writer,
            "checkpoint": self.checkpoint.number if self.checkpoint else None,
            "finalized": self.checkpoint.finalized if self.checkpoint else None,
            "head": self._head,
            "events": self.stats.events,
            "commits": self.stats.commits,
            "reorgs": self.stats.reorgs,
            "retries": self.retrier.retries,
            "splits": self.fetcher.splits,
        }
