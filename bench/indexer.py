"""The indexer's throughput and live lag on anvil, against a ceiling and a plain baseline.

One run:

1. anvil with at least 100,000 escrow events over every event type (`bench.workload.Workload`:
   rounds of 5,000 orders; batched deliveries and settlements give ~2.7 events per order);
2. (c) ceiling: raw `eth_getLogs` plus JSON parse over the same chain, with the indexer's own
   adaptive ranges and concurrency, no decoding, no database;
3. (a) the indexer into SQLite, (b) into PostgreSQL, from an empty mirror to the head;
4. (d) a plain baseline: web3 `contract.events.X().get_logs` per event type and SQLAlchemy ORM
   `add_all` of raw and order-history rows, one commit per 20-block range, over the first
   rounds of the same chain (a prefix with the same mix of events, to keep the run short);
5. (e) live lag on a second anvil mining a block every second: from the moment a block is
   visible on the node to the moment its events are visible in the mirror, p99 over events;
6. (f) a floor, printed but not in the result dict: the least an indexer must do, fetch + parse
   + one raw-event row per log into SQLite (no decoding, no decoded tables), one thread. Its
   ratio to the ceiling shows how much room the ≥ 0.5 × ceiling target leaves for the rest.

The last line of `kameng bench indexer --json` is the result dict. `--quick` runs the same steps
on the same real parts (anvil, SQLite, PostgreSQL) at `QUICK` sizes, for CI: a few thousand
events and a few seconds of live blocks, so its figures say the run works, not how fast.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bench.workload import AnvilDriver, Workload
from contracts.chain import AnvilNode
from indexer import models as m
from indexer.db import make_engine, migrate
from indexer.fetch import RangeSizer
from indexer.runner import Indexer
from indexer.source import HttpSource

if TYPE_CHECKING:
    from rich.console import Console

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_EVENTS = 100_000
ORDERS_PER_ROUND = 5_000
BASELINE_EVENTS = 20_000
BASELINE_RANGE = 20
LIVE_SECONDS = 20
FIELDS = (
    "events",
    "sqlite_eps",
    "postgres_eps",
    "ceiling_eps",
    "baseline_eps",
    "live_p99_ms",
)
"""The result's keys, all ints: an event count, rates in events/s and a lag in ms."""


@dataclass(frozen=True)
class Sizes:
    """How much one run does.

    Attributes:
        target_events: Rounds are generated until the chain holds at least this many events.
        orders_per_round: New orders per lifecycle round.
        per_block: Transactions of one kind per block.
        batch: Orders per deliver or settle transaction.
        baseline_events: The plain baseline indexes the prefix holding this many events.
        live_seconds: How long the live-lag measurement runs.
    """

    target_events: int
    orders_per_round: int
    per_block: int
    batch: int
    baseline_events: int
    live_seconds: int


FULL = Sizes(TARGET_EVENTS, ORDERS_PER_ROUND, 500, 100, BASELINE_EVENTS, LIVE_SECONDS)
QUICK = Sizes(2_000, 500, 100, 20, 500, 4)


def _generate(console: Console, url: str, sizes: Sizes) -> Workload:
    work = Workload(AnvilDriver(url), buyers=20)
    work.deploy()
    work.config_change()
    started = time.monotonic()
    while work.total_events() < sizes.target_events:
        work.round(sizes.orders_per_round, per_block=sizes.per_block, batch=sizes.batch)
        console.print(
            f"[dim]  {work.total_events():,} events, block {work.driver.head()}, "
            f"{time.monotonic() - started:.0f} s[/dim]"
        )
    return work


def _ceiling(url: str, escrow: str, head: int, concurrency: int) -> tuple[int, float]:
    """Raw eth_getLogs + JSON parse with the indexer's range sizing, at `concurrency`."""
    source = HttpSource(url)
    sizer = RangeSizer(source.initial_range, source.max_range)
    count = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        cursor = 0
        in_flight: list[Any] = []
        while cursor <= head or in_flight:
            while cursor <= head and len(in_flight) < concurrency:
                hi = min(head, cursor + sizer.next_size() - 1)
                in_flight.append((cursor, hi, pool.submit(source.logs, cursor, hi, escrow)))
                cursor = hi + 1
            lo, hi, future = in_flight.pop(0)
            logs = future.result()
            sizer.succeeded(hi - lo + 1, len(logs))
            count += len(logs)
    return count, time.perf_counter() - started


def floor(url: str, database: str, escrow: str, head: int) -> tuple[int, float]:
    """Fetch + parse + the raw-event rows alone, sequentially, committed every ~20,000 logs.

    The rows are exactly those the indexer writes to ``raw_events`` (tested), so the floor does
    the same mandatory work as the indexer and nothing else.

    Returns:
        Logs written and the seconds it took.
    """
    from eth_utils import to_checksum_address

    from contracts.client import escrow_codec
    from indexer.apply import RAW_COLUMNS
    from indexer.bulk import BulkWriter
    from indexer.state import TABLES

    migrate(database)
    engine = make_engine(database)
    names = {"0x" + spec.topic0.hex(): name for name, spec in escrow_codec().by_name.items()}
    source = HttpSource(url)
    chain_id = source.chain_id()
    address = to_checksum_address(escrow)
    sizer = RangeSizer(source.initial_range, source.max_range)
    count = pending = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        writer = BulkWriter(conn)
        tx = conn.begin()
        cursor = 0
        while cursor <= head:
            hi = min(head, cursor + sizer.next_size() - 1)
            logs = source.logs(cursor, hi, escrow)
            sizer.succeeded(hi - cursor + 1, len(logs))
            rows = []
            for e in logs:
                block, index = int(e["blockNumber"], 16), int(e["logIndex"], 16)
                rows.append(
                    (
                        (block << 24) | (index << 4),
                        chain_id,
                        block,
                        e["blockHash"].lower(),
                        index,
                        e["transactionHash"].lower(),
                        address,
                        names.get(e["topics"][0], ""),
                        ",".join(e["topics"]).lower(),
                        bytes.fromhex(e["data"][2:]),
                    )
                )
            writer.insert_tuples(TABLES["raw_events"], RAW_COLUMNS, rows)
            count += len(rows)
            pending += len(rows)
            if pending >= 20_000:
                tx.commit()
                tx = conn.begin()
                pending = 0
            cursor = hi + 1
        tx.commit()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return count, elapsed


def _index(url: str, database: str, escrow: str) -> tuple[int, float]:
    migrate(database)
    with Indexer(url, database, escrow, auto_migrate=False) as ix:
        started = time.perf_counter()
        events = ix.run_once()
        return events, time.perf_counter() - started


def _baseline(url: str, database: str, escrow: str, last_block: int) -> tuple[int, float]:
    """web3's contract events + ORM add_all, one commit per range: a plain indexer."""
    from sqlalchemy.orm import Session
    from web3 import HTTPProvider, Web3

    from contracts.artifacts import load

    migrate(database)
    engine = make_engine(database)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 60}))
    contract = w3.eth.contract(address=escrow, abi=load("CodeEscrow").abi)  # type: ignore[call-overload]
    names = [e["name"] for e in load("CodeEscrow").abi if e["type"] == "event"]
    chain_id = w3.eth.chain_id
    order_events = {
        "OrderPaid",
        "OrderDelivered",
        "OrderConfirmed",
        "OrderSettled",
        "OrderRefunded",
        "DisputeOpened",
        "EvidenceAdded",
        "DisputeRuled",
    }
    count = 0
    started = time.perf_counter()
    with Session(engine) as session:
        for lo in range(0, last_block + 1, BASELINE_RANGE):
            hi = min(last_block, lo + BASELINE_RANGE - 1)
            rows: list[Any] = []
            for name in names:
                for ev in getattr(contract.events, name)().get_logs(from_block=lo, to_block=hi):
                    block, index = int(ev["blockNumber"]), int(ev["logIndex"])
                    args = {
                        k: (v.hex() if isinstance(v, bytes) else v)
                        for k, v in dict(ev["args"]).items()
                    }
                    rows.append(
                        m.RawEvent(
                            id=(block << 24) | (index << 4),
                            chain_id=chain_id,
                            block_number=block,
                            block_hash=ev["blockHash"].to_0x_hex(),
                            log_index=index,
                            tx_hash=ev["transactionHash"].to_0x_hex(),
                            address=ev["address"],
                            name=name,
                            topics="",
                            data=json.dumps(args, default=str).encode(),
                        )
                    )
                    if name in order_events:
                        rows.append(
                            m.OrderEvent(
                                id=(block << 24) | (index << 4),
                                order_id=int(ev["args"]["orderId"]),
                                name=name,
                                state_after=0,
                                timestamp=0,
                                block_number=block,
                                tx_hash=ev["transactionHash"].to_0x_hex(),
                                log_index=index,
                            )
                        )
                    count += 1
            session.add_all(rows)
            session.commit()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return count, elapsed


def _live(console: Console, seconds: int) -> tuple[float, int]:
    """Lag from a block's appearance on the node to its events' appearance in the mirror."""
    import tempfile

    node = AnvilNode()
    node.start()
    tmp = tempfile.TemporaryDirectory()
    database = f"sqlite:///{tmp.name}/live.db"
    try:
        work = Workload(AnvilDriver(node.url), buyers=4)
        work.deploy()
        work.restock(work.listings[-1], 10_000)
        work.driver.rpc("evm_setIntervalMining", [1])  # from now on, a block every second
        migrate(database)
        ix = Indexer(node.url, database, work.escrow, auto_migrate=False)
        ix.run_once()
        stop = threading.Event()
        seen: dict[int, float] = {}
        events: dict[int, int] = {}
        visible: dict[int, float] = {}
        source = HttpSource(node.url)
        engine = make_engine(database)

        def observe() -> None:
            last = source.head()
            while not stop.is_set():
                head = source.head()
                now = time.perf_counter()
                for n in range(last + 1, head + 1):
                    seen.setdefault(n, now)
                    events[n] = len(source.logs(n, n, work.escrow))
                last = head
                stop.wait(0.005)

        def watch() -> None:
            while not stop.is_set():
                with engine.connect() as conn:
                    cp = conn.execute(sa.text("SELECT block_number FROM checkpoints")).scalar()
                now = time.perf_counter()
                for n in list(seen):
                    if cp is not None and n <= cp and n not in visible:
                        visible[n] = now
                stop.wait(0.005)

        def send() -> None:
            lid = work.listings[-1]
            while not stop.is_set():
                txs = [
                    work.tx(
                        b,
                        "buy",
                        lid,
                        1,
                        work.unit_price,
                        "0x" + "00" * 20,
                        b"\x01" * 32,
                        value=work.unit_price,
                        gas=300_000,
                    )
                    for b in work.buyer_list
                ]
                work.driver.send(txs)
                stop.wait(0.25)

        threads = [threading.Thread(target=f, daemon=True) for f in (observe, watch, send)]
        runner = threading.Thread(target=ix.run_forever, args=(stop,), daemon=True)
        runner.start()
        for t in threads:
            t.start()
        console.print(f"[dim]  {seconds} s of 1-s blocks, 16 purchases a second[/dim]")
        stop.wait(seconds)
        stop.set()
        for t in [*threads, runner]:
            t.join(10)
        ix.close()
        engine.dispose()
        lags: list[float] = []
        for n, t_seen in seen.items():
            if n in visible and events.get(n):
                lags += [max(0.0, visible[n] - t_seen) * 1000] * events[n]
        lags.sort()
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan")
        if lags:
            console.print(
                f"[dim]  {len(lags)} events; lag median "
                f"{statistics.median(lags):.0f} ms, p99 {p99:.0f} ms, "
                f"max {lags[-1]:.0f} ms[/dim]"
            )
        return p99, len(lags)
    finally:
        node.stop()
        tmp.cleanup()


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """Generate the chain, measure (a) to (e), and return the issue's result dict.

    Args:
        console: Where progress and the floor and ratios go.
        quick: Run at `QUICK` sizes instead of `FULL`.

    Returns:
        The figures named by `FIELDS`.
    """
    import tempfile

    sizes = QUICK if quick else FULL
    tmp = tempfile.TemporaryDirectory()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    node = AnvilNode()
    node.start()
    try:
        console.print("[bold]generating[/bold] escrow events on anvil")
        work = _generate(console, node.url, sizes)
        head = work.driver.head()
        total = work.total_events()
        concurrency = HttpSource(node.url).max_concurrency

        console.print(
            "[bold](c)[/bold] ceiling: raw eth_getLogs + JSON parse, the best of "
            f"sequential and {concurrency} in flight"
        )
        ceiling = 0.0
        for width in (1, concurrency):
            n, secs = _ceiling(node.url, work.escrow, head, width)
            assert n == total, (n, total)
            ceiling = max(ceiling, n / secs)
            console.print(f"[dim]  {width} in flight: {n:,} logs in {secs:.2f} s[/dim]")

        console.print("[bold](a)[/bold] indexer into SQLite")
        n, secs = _index(node.url, f"sqlite:///{tmp.name}/mirror.db", work.escrow)
        assert n == total, (n, total)
        sqlite_eps = n / secs
        console.print(f"[dim]  {n:,} events in {secs:.2f} s[/dim]")

        console.print("[bold](b)[/bold] indexer into PostgreSQL")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        pg_url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        n, secs = _index(node.url, pg_url, work.escrow)
        assert n == total, (n, total)
        postgres_eps = n / secs
        console.print(f"[dim]  {n:,} events in {secs:.2f} s[/dim]")

        console.print(
            "[bold](f)[/bold] floor: fetch + parse + raw-event rows only, SQLite, one thread"
        )
        n, secs = floor(node.url, f"sqlite:///{tmp.name}/floor.db", work.escrow, head)
        assert n == total, (n, total)
        floor_eps = n / secs
        console.print(
            f"[dim]  {n:,} events in {secs:.2f} s: {floor_eps:,.0f}/s, "
            f"{floor_eps / ceiling:.2f}× the ceiling[/dim]"
        )

        console.print("[bold](d)[/bold] baseline: web3 get_logs + ORM add_all")
        prefix = _prefix_block(node.url, work.escrow, sizes.baseline_events)
        n, secs = _baseline(node.url, f"sqlite:///{tmp.name}/baseline.db", work.escrow, prefix)
        baseline = n / secs
        console.print(f"[dim]  {n:,} events (blocks 0-{prefix}) in {secs:.2f} s[/dim]")
    finally:
        node.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        tmp.cleanup()

    console.print("[bold](e)[/bold] live lag with 1-s blocks")
    p99, _count = _live(console, sizes.live_seconds)
    result = {
        "events": total,
        "sqlite_eps": round(sqlite_eps),
        "postgres_eps": round(postgres_eps),
        "ceiling_eps": round(ceiling),
        "baseline_eps": round(baseline),
        "live_p99_ms": round(p99),
    }
    console.print(
        f"ratios: sqlite/ceiling {sqlite_eps / ceiling:.2f}, postgres/ceiling "
        f"{postgres_eps / ceiling:.2f}, sqlite/baseline {sqlite_eps / baseline:.1f}, "
        f"postgres/baseline {postgres_eps / baseline:.1f}"
    )
    return result


def _prefix_block(url: str, escrow: str, events: int) -> int:
    """The first block by which the chain holds at least `events` escrow events."""
    source = HttpSource(url)
    head = source.head()
    count, block = 0, 0
    while block <= head and count < events:
        count += len(source.logs(block, min(head, block + 9), escrow))
        block += 10
    return min(head, block - 1)
