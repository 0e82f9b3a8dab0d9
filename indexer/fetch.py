"""Fetching logs fast and through faults: adaptive ranges, retries, splitting, ordered concurrency.

- `RangeSizer` picks the next `eth_getLogs` block range: it grows while answers are small,
  shrinks when they are large, and halves (or takes the provider's suggestion) on "too many
  results".
- `Retrier` retries transient faults (timeouts, HTTP 429 and 5xx) with capped exponential
  backoff and jitter, honouring ``Retry-After``.
- `LogFetcher.fetch_range` returns one range's logs and the headers of the blocks that hold
  them (and of its last block), splitting the range as often as the node demands, and checks
  that every log's block hash is the hash of the header fetched for it.
- `RangePipeline` keeps several ranges in flight on a thread pool and hands them back strictly
  in order, so the caller commits block ranges in order while the next ones download.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from indexer.errors import (
    ChainMovedError,
    IndexerError,
    RangeTooLargeError,
    TransientRpcError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from indexer.source import Header, Source

log = logging.getLogger("kameng.indexer")
T = TypeVar("T")


class StopRequested(IndexerError):
    """The caller asked the indexer to stop while it was waiting to retry."""


@dataclass
class RetryPolicy:
    """How transient faults are retried.

    Attributes:
        base: The first wait, in seconds.
        cap: The longest wait.
        max_attempts: Attempts before the fault is raised (None: keep trying).
    """

    base: float = 0.2
    cap: float = 10.0
    max_attempts: int | None = 12

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before attempt ``attempt + 1`` (full jitter, at least ``Retry-After``)."""
        ceiling = min(self.cap, self.base * (2**attempt))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


class Retrier:
    """Runs calls under a `RetryPolicy`, waking early when `stop` is set."""

    def __init__(self, policy: RetryPolicy, stop: threading.Event | None = None) -> None:
        """Bind a policy and an optional stop event."""
        self.policy = policy
        self.stop = stop or threading.Event()
        self.retries = 0
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Call `fn` until it succeeds, retrying `TransientRpcError` and `ChainMovedError`.

        Raises:
            TransientRpcError: the fault outlasted `max_attempts`.
            ChainMovedError: the chain kept moving under the fetch.
            StopRequested: the stop event was set while waiting.
        """
        attempt = 0
        while True:
            try:
                return fn()
            except (TransientRpcError, ChainMovedError) as exc:
                attempt += 1
                with self._lock:
                    self.retries += 1
                limit = self.policy.max_attempts
                if limit is not None and attempt >= limit:
                    raise
                retry_after = getattr(exc, "retry_after", None)
                wait = self.policy.delay(attempt - 1, retry_after)
                log.warning("%s: %s; retry %d in %.2f s", what, exc, attempt, wait)
                if self.stop.wait(wait):
                    raise StopRequested(f"stopped while retrying {what}") from exc


class RangeSizer:
    """Adaptive `eth_getLogs` ranges: grow on small answers, shrink on large or refused ones."""

    def __init__(self, initial: int, maximum: int, target_logs: int = 5000) -> None:
        """Start at `initial` blocks per request, never above `maximum`.

        Args:
            initial: The first range size.
            maximum: The largest range size.
            target_logs: The number of logs per answer to aim for.
        """
        self.maximum = max(1, maximum)
        self.size = max(1, min(initial, self.maximum))
        self.target = target_logs
        self._lock = threading.Lock()

    def next_size(self) -> int:
        """The size of the next range to ask for."""
        with self._lock:
            return self.size

    def succeeded(self, blocks: int, logs: int) -> None:
        """Learn from an answer of `logs` logs over `blocks` blocks: aim at `target_logs`."""
        with self._lock:
            if logs > self.target * 2:
                self.size = max(1, min(self.size, blocks * self.target // logs))
            elif logs * 2 < self.target and blocks >= self.size // 2:
                factor = min(8, self.target // max(1, logs))
                self.size = min(self.maximum, max(self.size, blocks) * max(2, factor))

    def refused(self, blocks: int, suggested: int | None = None) -> None:
        """Learn that a range of `blocks` blocks was too large (`suggested`: the node's size)."""
        with self._lock:
            limit = suggested if suggested is not None and 0 < suggested < blocks else blocks // 2
            self.size = max(1, min(self.size, limit))


@dataclass
class FetchedRange:
    """One block range's logs and the headers the indexer needs for it.

    Attributes:
        start: First block.
        end: Last block.
        logs: The contract's logs, in chain order, as JSON-RPC dicts.
        headers: Headers of every block that holds a log, and of `end`.
    """

    start: int
    end: int
    logs: list[dict[str, Any]]
    headers: dict[int, Header] = field(default_factory=dict)


class LogFetcher:
    """Fetches one contract's logs over block ranges, through faults."""

    def __init__(self, source: Source, address: str, sizer: RangeSizer, retrier: Retrier) -> None:
        """Bind a source, the contract address, a range sizer and a retrier."""
        self.source = source
        self.address = address
        self.sizer = sizer
        self.retrier = retrier
        self.splits = 0
        self._lock = threading.Lock()

    def logs(self, start: int, end: int) -> list[dict[str, Any]]:
        """All logs in ``[start, end]``, splitting the range as often as the node asks.

        Raises:
            IndexerError: a single block has more logs than the node will return.
        """
        out: list[dict[str, Any]] = []
        pending: deque[tuple[int, int]] = deque([(start, end)])
        while pending:
            lo, hi = pending.popleft()
            try:
                got = self.retrier.call(
                    lambda lo=lo, hi=hi: self.source.logs(lo, hi, self.address),  # type: ignore[misc]
                    f"eth_getLogs [{lo}, {hi}]",
                )
            except RangeTooLargeError as exc:
                if lo == hi:
                    raise IndexerError(
                        f"the node refuses the logs of block {lo} even alone ({exc}); "
                        "use a node without a result limit"
                    ) from exc
                with self._lock:
                    self.splits += 1
                cut = exc.suggested_to
                if cut is None or not lo <= cut < hi:
                    cut = lo + (hi - lo) // 2
                self.sizer.refused(hi - lo + 1, cut - lo + 1 if exc.suggested_to else None)
                log.info("eth_getLogs [%d, %d] too large; splitting at %d", lo, hi, cut)
                pending.appendleft((cut + 1, hi))
                pending.appendleft((lo, cut))
                continue
            self.sizer.succeeded(hi - lo + 1, len(got))
            out.extend(got)
        return out

    def header(self, number: int) -> Header:
        """One block's header, retried while the node does not have it.

        Raises:
            TransientRpcError: the node kept answering that it has no such block.
        """

        def get() -> Header:
            h = self.source.header(number)
            if h is None:
                raise TransientRpcError(f"the node has no block {number} yet")
            return h

        return self.retrier.call(get, f"header {number}")

    def fetch_range(self, start: int, end: int) -> FetchedRange:
        """Logs of ``[start, end]`` with the headers of their blocks and of `end`, consistent.

        Raises:
            ChainMovedError: the logs' block hashes kept disagreeing with the headers.
        """

        def attempt() -> FetchedRange:
            logs = self.logs(start, end)
            headers: dict[int, Header] = {}
            for number in sorted({int(entry["blockNumber"], 16) for entry in logs} | {end}):
                headers[number] = self.header(number)
            for entry in logs:
                number = int(entry["blockNumber"], 16)
                if str(entry["blockHash"]).lower() != headers[number].hash:
                    raise ChainMovedError(
                        f"block {number} changed while [{start}, {end}] was fetched"
                    )
            return FetchedRange(start, end, logs, headers)

        return self.retrier.call(attempt, f"range [{start}, {end}]")


class RangePipeline:
    """Fetches consecutive ranges concurrently and yields them in block order."""

    def __init__(
        self, fetcher: LogFetcher, executor: ThreadPoolExecutor | None, concurrency: int
    ) -> None:
        """Bind a fetcher and a thread pool (None: fetch inline, one range at a time)."""
        self.fetcher = fetcher
        self.executor = executor
        self.concurrency = max(1, concurrency)

    def batches(self, start: int, end: int, max_logs: int = 20_000) -> Iterator[list[FetchedRange]]:
        """Yield consecutive `FetchedRange`s covering ``[start, end]``, in order, in groups.

        A group is the next range plus those after it that have already arrived, up to
        `max_logs` logs, so the caller can commit them in one transaction. Ranges are planned
        with the sizer's current size as each is submitted, so sizes adapt while it runs.
        Closing the iterator early cancels what is still queued.
        """
        sizer = self.fetcher.sizer
        if self.executor is None or self.concurrency == 1:
            cursor = start
            while cursor <= end:
                hi = min(end, cursor + sizer.next_size() - 1)
                yield [self.fetcher.fetch_range(cursor, hi)]
                cursor = hi + 1
            return
        in_flight: deque[Future[FetchedRange]] = deque()
        cursor = start
        try:
            while cursor <= end or in_flight:
                while cursor <= end and len(in_flight) < self.concurrency:
                    hi = min(end, cursor + sizer.next_size() - 1)
                    in_flight.append(self.executor.submit(self.fetcher.fetch_range, cursor, hi))
                    cursor = hi + 1
                group = [in_flight.popleft().result()]
                count = len(group[0].logs)
                while in_flight and in_flight[0].done() and count < max_logs:
                    group.append(in_flight.popleft().result())
                    count += len(group[-1].logs)
                yield group
        finally:
            for future in in_flight:
                future.cancel()
