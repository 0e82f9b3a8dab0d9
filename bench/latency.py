"""Latency from a payment's block to its sealed release being fetchable, and throughput.

The API serves a release only once its delivery is on-chain and indexed (audit finding 10), so
this is payment block -> sealed, delivered on-chain, indexed and served.

Three runs of the whole backend in this process (API under uvicorn, indexer, delivery agent, on
SQLite), against a real chain:

- **embedded**: eth-tester, which mines each transaction in its own block inside
  ``eth_sendRawTransaction``. One order at a time: the clock starts when the send returns (the
  block exists) and stops when ``GET /buyer/orders/{id}/release`` first answers 200 (polled
  every 5 ms over HTTP, with a signed request): the deliver transaction is mined and indexed.
- **anvil_1s_blocks**: anvil mining a block every second, while buyers pay at a steady
  ``RATE`` orders per second for ``SECONDS`` seconds: a generator process builds every payment
  first, then sends them at the rate without waiting, as ``eth_sendTransaction`` from fresh
  accounts the node impersonates (`run_paced_load`: signing in Python held it to 16 of the
  60/s asked on the busy machine). In a process of their own (`WatcherProcess`), a watcher
  polls the node every 5 ms and notes when each block first appears, and a poller asks the
  database every 10 ms which releases the API would serve (the API's own query,
  `backend.api.queries.servable_releases`: stored, and delivered on-chain with that digest in
  the mirror; every release is then fetched through the API to check it). Latency is the time
  from the order's block appearing to its release becoming servable. ``orders_per_s`` is the
  number of orders divided by the time from the first order's block to the last release:
  orders paid, sealed, delivered and servable per second, end to end. The CPU each of the
  backend's threads used meanwhile is printed (not in the JSON).
- **anvil_1s_blocks_cpu_hog** (issue 17, "Latency under pressure"): right after, on the same
  node and backend, the same load again from fresh buyers while a `CpuHog` keeps the machine
  busy, as another tenant of a shared host would: one busy-looping Python process per core,
  at normal priority, from before the first payment until the last release is servable. It
  adds the hog's processes and progress (``hog_cores``: the CPU-seconds they ran per second,
  summed; ``hog_mloops_per_s``: their loop turns, millions per second, summed).

Each anvil run also says the 1-minute load average (`os.getloadavg`) as it starts and ends:
the machine is shared, and the figures mean little without it.

The last line of ``kameng bench latency --json`` is
``{"embedded": {"p50_ms": N, "p99_ms": N}, "anvil_1s_blocks": {"p50_ms": N, "p99_ms": N,
"orders_per_s": N, "load_avg_1m_start": N, "load_avg_1m_end": N},
"anvil_1s_blocks_cpu_hog": {... the same, "hog_processes": N, "hog_cores": N,
"hog_mloops_per_s": N}}``. Targets (issue 3): embedded p99 <= 500 ms; anvil with 1-s blocks
at >= 50 orders/s, p99 <= 1,500 ms; the same with the CPU hog (issue 17). ``--quick`` runs
all three on the same real parts at small sizes (``QUICK_EMBEDDED_ORDERS``; ``QUICK_RATE``
orders/s for ``QUICK_SECONDS`` s, then for ``QUICK_HOG_SECONDS`` s with the hog), for CI: its
figures say the run works, not whether the targets are met.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_typing import HexStr
from eth_utils import keccak
from nacl.public import PrivateKey
from sqlalchemy import select

from backend.api.queries import servable_releases
from backend.client import KamengClient
from backend.config import Settings
from backend.runtime import Runtime, demo_codes, deploy_dev_world
from contracts.chain import AnvilNode, rpc_chain

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from rich.console import Console

    from contracts.chain import Chain
    from contracts.client import EscrowClient

EMBEDDED_ORDERS = 100
RATE = 60.0
SECONDS = 30
BUYERS = 120
GAS = 150_000
QUICK_EMBEDDED_ORDERS = 10
QUICK_RATE = 10.0
QUICK_SECONDS = 3
QUICK_HOG_SECONDS = 2
FIELDS = (
    "embedded.p50_ms",
    "embedded.p99_ms",
    "anvil_1s_blocks.p50_ms",
    "anvil_1s_blocks.p99_ms",
    "anvil_1s_blocks.orders_per_s",
    "anvil_1s_blocks.load_avg_1m_start",
    "anvil_1s_blocks.load_avg_1m_end",
    "anvil_1s_blocks_cpu_hog.p50_ms",
    "anvil_1s_blocks_cpu_hog.p99_ms",
    "anvil_1s_blocks_cpu_hog.orders_per_s",
    "anvil_1s_blocks_cpu_hog.load_avg_1m_start",
    "anvil_1s_blocks_cpu_hog.load_avg_1m_end",
    "anvil_1s_blocks_cpu_hog.hog_processes",
    "anvil_1s_blocks_cpu_hog.hog_cores",
    "anvil_1s_blocks_cpu_hog.hog_mloops_per_s",
)
"""Dotted paths of the result's leaves, all floats: latencies in ms, rates in orders/s, the
1-minute load average (`os.getloadavg`) as each anvil run starts and ends, and the CPU hog's
processes and progress (`CpuHog.stop`)."""


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of `values`."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _settings() -> Settings:
    # The run signs in every buyer from one address: the API's rate limits (which have their
    # own tests) would refuse it, and they are not what this measures.
    return Settings(environment="development", order_source="auto", rate_limit_scale=1000.0)


def _upload(runtime: Runtime, count: int) -> None:
    assert runtime.dev is not None and runtime.url is not None
    client = KamengClient(runtime.url, timeout=600)
    client.sign_in(runtime.dev.supplier)
    for start in range(0, count, 5000):
        n = min(5000, count - start)
        client.upload_codes(runtime.dev.listing_id, b"\n".join(demo_codes(n, start)))


_BUY_SELECTOR = keccak(text="buy(uint256,uint32,uint256,address,bytes32)")[:4]
_BUY_TYPES = ["uint256", "uint32", "uint256", "address", "bytes32"]


def _signed_buy(
    escrow: str, buyer: LocalAccount, listing_id: int, nonce: int, gas_price: int, chain_id: int
) -> bytes:
    """A signed `buy` of one code with a throwaway buyer key, encoded without web3's helpers
    (they cost milliseconds per call, which a load generator cannot afford)."""
    data = _BUY_SELECTOR + abi_encode(
        _BUY_TYPES,
        [listing_id, 1, 10**16, "0x" + "00" * 20, bytes(PrivateKey.generate().public_key)],
    )
    tx: Any = {
        "to": escrow,
        "data": data,
        "value": 10**16,
        "nonce": nonce,
        "gas": GAS,
        "gasPrice": gas_price,
        "chainId": chain_id,
    }
    return bytes(buyer.sign_transaction(tx).raw_transaction)


def _load(
    url: str,
    escrow: str,
    listing_id: int,
    keys: list[str],
    rate: float,
    total: int,
    gas_price: int,
    chain_id: int,
) -> tuple[list[str], float]:
    """Pay for `total` orders at `rate` per second from `keys`; return the tx hashes and the
    seconds it took."""
    sender = rpc_chain(url)
    buyers = [Account.from_key(k) for k in keys]
    nonces = dict.fromkeys((b.address for b in buyers), 0)
    hashes: list[str] = []
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator
        buyer = buyers[i % len(buyers)]
        raw = _signed_buy(escrow, buyer, listing_id, nonces[buyer.address], gas_price, chain_id)
        nonces[buyer.address] += 1
        hashes.append(str(sender.make_request("eth_sendRawTransaction", ["0x" + raw.hex()])))
    return hashes, time.perf_counter() - start


def load_main() -> None:
    """Entry of the load generator's process: arguments as JSON on stdin, result on stdout."""
    args = json.loads(sys.stdin.read())
    hashes, took = _load(**args)
    sys.stdout.write(json.dumps({"hashes": hashes, "seconds": took}))


def run_load(**kwargs: Any) -> tuple[list[str], float]:
    """Run `_load` in a child process: buyers are other machines, and a load generator in this
    process would compete with the backend for the interpreter lock.

    Raises:
        RuntimeError: the child failed.
    """
    proc = subprocess.run(
        [sys.executable, "-c", "from bench.latency import load_main; load_main()"],
        input=json.dumps(kwargs),
        capture_output=True,
        text=True,
        check=False,
        timeout=kwargs["total"] / kwargs["rate"] * 3 + 120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    return list(out["hashes"]), float(out["seconds"])


def run_paced_load(
    on_ready: Callable[[], None] | None = None, **kwargs: Any
) -> tuple[list[str], float]:
    """Pay for `total` orders at `rate` per second from the `buyers` (addresses the node
    impersonates: ``anvil_autoImpersonateAccount``), from a child process, like `run_load`.

    The child is `bench._paced_load`. The node signs nothing and the child nothing: signing
    in Python costs about 11 ms a payment here, two thirds of a core at 60 a second, and on a
    busy machine it held the generator to a fraction of the rate asked (16 of 60/s at a load
    average of 12; under 9/s with the CPU hog). The payments are built first; `on_ready` runs
    between that and the first send.

    Raises:
        RuntimeError: the child failed.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bench._paced_load import main; main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(json.dumps(kwargs) + "\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "ready":
            proc.wait(timeout=30)
            raise RuntimeError(f"the load generator failed: {proc.stderr.read()[-2000:]}")
        if on_ready is not None:
            on_ready()
        out, err = proc.communicate("go\n", timeout=kwargs["total"] / kwargs["rate"] * 3 + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return list(result["hashes"]), float(result["seconds"])


def _order_id(escrow: EscrowClient, receipt: Any) -> int:
    for log in receipt["logs"]:
        decoded = escrow.codec.decode_log(dict(log))
        if decoded is not None and decoded.name == "OrderPaid":
            return int(decoded.args["orderId"])
    raise RuntimeError(f"no OrderPaid in {receipt['transactionHash'].hex()}")


# ---------------------------------------------------------------- embedded


def embedded(console: Console, orders: int = EMBEDDED_ORDERS) -> dict[str, float]:
    """Payment block to fetchable (so delivered) release on the embedded chain, one order at
    a time."""
    runtime = Runtime.embedded(_settings(), buyers=4)
    try:
        runtime.start()
        assert runtime.dev is not None and runtime.url is not None
        _upload(runtime, orders + 20)
        escrow, chain, dev = runtime.escrow, runtime.chain, runtime.dev
        api = KamengClient(runtime.url)
        chain_id = chain.chain_id
        gas_price = escrow.tx.gas_price()
        nonces = {b.address: int(chain.w3.eth.get_transaction_count(b.address)) for b in dev.buyers}
        latencies: list[float] = []
        tokens: dict[str, str] = {}
        for b in dev.buyers:  # each buyer signs in once, as the web's buyers do
            tokens[b.address] = api.sign_in(b).token
        console.print(f"[dim]embedded: {orders} orders, one at a time[/dim]")
        for i in range(orders + 5):
            buyer = dev.buyers[i % len(dev.buyers)]
            raw = _signed_buy(
                escrow.address, buyer, dev.listing_id, nonces[buyer.address], gas_price, chain_id
            )
            nonces[buyer.address] += 1
            tx_hash = chain.w3.eth.send_raw_transaction(raw)
            mined = time.perf_counter()  # eth-tester mined the block inside the send
            oid = _order_id(escrow, chain.w3.eth.get_transaction_receipt(tx_hash))
            path = f"/buyer/orders/{oid}/release"
            headers = {"Authorization": f"Bearer {tokens[buyer.address]}"}
            while api.http.get(path, headers=headers).status_code != 200:
                time.sleep(0.005)  # polling the API for the release, as a buyer would
            if i >= 5:  # the first orders warm caches up
                latencies.append((time.perf_counter() - mined) * 1000)
        runtime.check()
    finally:
        runtime.stop()
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
    }


# ---------------------------------------------------------------- anvil, 1-s blocks


class BlockWatcher(threading.Thread):
    """Notes the wall time at which each block number first appears."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(name="bench-blocks", daemon=True)
        self.polled = threading.Event()
        self.chain = rpc_chain(url)
        self.stop_event = stop
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        last = -1
        while not self.stop_event.is_set():
            number = int(self.chain.make_request("eth_blockNumber", []), 16)
            now = time.perf_counter()
            for n in range(last + 1, number + 1):
                self.seen.setdefault(n, now)
            last = max(last, number)
            self.polled.set()
            self.stop_event.wait(0.005)


class ReleaseWatcher(threading.Thread):
    """Notes the wall time at which each order's release first becomes servable by the API
    (stored, and delivered on-chain with its digest in the mirror)."""

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="bench-releases", daemon=True)
        self.polled = threading.Event()
        self.runtime = runtime
        self.stop_event = stop
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        newest = 0
        while not self.stop_event.is_set():
            with self.runtime.sessions() as session:
                rows = servable_releases(session, since_block=max(0, newest - 2))
            now = time.perf_counter()
            for oid, block in rows.items():
                self.seen.setdefault(oid, now)
                newest = max(newest, block)
            self.polled.set()
            self.stop_event.wait(0.01)


class MirrorWatcher(threading.Thread):
    """Notes the wall time at which each order first appears in the indexer's mirror (for the
    breakdown: block -> mirror -> release)."""

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="bench-mirror", daemon=True)
        self.polled = threading.Event()
        self.runtime = runtime
        self.stop_event = stop
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        from indexer.models import Order as MirrorOrder

        newest = 0
        while not self.stop_event.is_set():
            with self.runtime.sessions() as session:
                rows = session.execute(
                    select(MirrorOrder.order_id, MirrorOrder.paid_block).where(
                        MirrorOrder.paid_block >= newest - 2
                    )
                ).all()
            now = time.perf_counter()
            for oid, block in rows:
                self.seen.setdefault(int(oid), now)
                newest = max(newest, int(block))
            self.polled.set()
            self.stop_event.wait(0.01)


def watch_main() -> None:
    """Entry of the watchers' process (`WatcherProcess`): a `BlockWatcher`, a `ReleaseWatcher`
    and a `MirrorWatcher` against the node and the database named on stdin's first line (JSON);
    each later line asks for what they saw so far, answered as one JSON line on stdout."""
    from types import SimpleNamespace

    from backend.db import make_engine, session_factory

    args = json.loads(sys.stdin.readline())
    stop = threading.Event()
    backend: Any = SimpleNamespace(sessions=session_factory(make_engine(args["database_url"])))
    watchers: dict[str, BlockWatcher | ReleaseWatcher | MirrorWatcher] = {
        "blocks": BlockWatcher(args["url"], stop),
        "releases": ReleaseWatcher(backend, stop),
        "mirror": MirrorWatcher(backend, stop),
    }
    for watcher in watchers.values():
        watcher.start()
    for watcher in watchers.values():
        watcher.polled.wait()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(json.dumps({k: dict(w.seen) for k, w in watchers.items()}), flush=True)
    stop.set()


class WatcherProcess:
    """The watchers in a process of their own (`watch_main`), so that their polling (200 node
    calls and 200 queries a second) never holds the backend's interpreter lock. Their clock,
    `time.perf_counter`, is the system's monotonic clock, the same in every process."""

    def __init__(self, url: str, database_url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bench.latency import watch_main; watch_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"url": url, "database_url": database_url}) + "\n")
        self.proc.stdin.flush()
        self.ready = False  # it starts while the caller goes on; `seen` waits for it

    def seen(self) -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
        """When each block first appeared, each order's release became servable, and each
        order appeared in the mirror (once each watcher has polled once).

        Raises:
            RuntimeError: the process did not start.
        """
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.ready:
            if self.proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the watchers' process did not start")
            self.ready = True
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return tuple(  # type: ignore[return-value]
            {int(k): float(v) for k, v in out[name].items()}
            for name in ("blocks", "releases", "mirror")
        )

    def close(self) -> None:
        """End the process."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_CLK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU-seconds each live Python thread of this process has used, by thread name (from
    ``/proc``; empty where there is none)."""
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[thread.name] = used.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / _CLK
    return used


def _fund(chain: Chain, accounts: list[LocalAccount]) -> None:
    for a in accounts:
        chain.make_request("anvil_setBalance", [a.address, hex(10**21)])


def start_backend(chain: Chain, settings: Settings, *, codes: int) -> Runtime:
    """A development world on `chain` (a well-bonded supplier and its listing) and the whole
    backend running against it, with `codes` codes uploaded through the API."""
    escrow, dev = deploy_dev_world(chain, buyers=0, bond=1000 * 10**18)
    runtime = Runtime.local(
        settings,
        chain=chain,
        escrow=escrow,
        delivery_account=dev.delivery,
        suppliers=[dev.supplier],
    )
    runtime.dev = dev
    runtime.start()
    _upload(runtime, codes)
    return runtime


class CpuHog:
    """Another tenant's work on a shared host: one busy-looping Python process per core, at
    normal priority (the nice value this process has, which the children inherit).

    Each child counts its loop's turns; `stop` ends them with SIGTERM and collects what they
    got done: the CPU-seconds each ran over its wall time, and the turns per second."""

    #: A child: says it is running, counts until SIGTERM, then prints its turns, its
    #: CPU-seconds and its wall seconds.
    CODE = (
        "import signal, sys, time\n"
        "n = 0\n"
        "t0 = time.perf_counter()\n"
        "def done(*_):\n"
        "    print(n, time.process_time(), time.perf_counter() - t0, flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, done)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    n += 1\n"
    )

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or os.cpu_count() or 1
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> None:
        """Start the children and return once each is looping.

        Raises:
            RuntimeError: a child did not start.
        """
        for _ in range(self.processes):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", self.CODE], stdout=subprocess.PIPE, text=True
                )
            )
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                self.stop()
                raise RuntimeError("a CPU hog process did not start")

    def stop(self) -> dict[str, float]:
        """End the children; their progress.

        Returns:
            ``hog_processes``; ``hog_cores``: the CPU-seconds the children ran per second of
            the run, summed (2.0 would be both cores to themselves); ``hog_mloops_per_s``:
            millions of loop turns per second, summed.
        """
        turns = cpu = wall = 0.0
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
            fields = out.split()
            if len(fields) == 3:
                turns += float(fields[0])
                cpu += float(fields[1])
                wall = max(wall, float(fields[2]))
        self.procs = []
        wall = max(wall, 1e-9)
        return {
            "hog_processes": float(self.processes),
            "hog_cores": round(cpu / wall, 2),
            "hog_mloops_per_s": round(turns / wall / 1e6, 2),
        }


def anvil_1s_blocks(
    console: Console,
    rate: float = RATE,
    seconds: int = SECONDS,
    *,
    hog_seconds: int | None = None,
    watchers_apart: bool = True,
) -> dict[str, dict[str, float]]:
    """Payment block to fetchable (so delivered) release on anvil with 1-s blocks, under a
    steady load; then, if `hog_seconds`, the same load again on the same node and backend with
    a `CpuHog` running from before the first payment to the last release. With `watchers_apart`
    (the default) the watchers run in a `WatcherProcess`, else as threads of this process.

    Returns:
        ``{"anvil_1s_blocks": {...}}`` and, with `hog_seconds`, ``"anvil_1s_blocks_cpu_hog"``.
    """
    total = int(rate * seconds) + (int(rate * hog_seconds) if hog_seconds else 0)
    node = AnvilNode()
    chain = node.start()
    runtime: Runtime | None = None
    process: WatcherProcess | None = None
    results: dict[str, dict[str, float]] = {}
    try:
        runtime = start_backend(chain, _settings(), codes=total + 100)
        if watchers_apart:  # one for both runs: it takes seconds to start
            process = WatcherProcess(node.url, runtime.engine.url.render_as_string(False))
        chain.make_request("anvil_autoImpersonateAccount", [True])  # see `run_paced_load`
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("evm_setIntervalMining", [1])
        results["anvil_1s_blocks"] = _steady_load(console, node, runtime, rate, seconds, process)
        if hog_seconds:
            results["anvil_1s_blocks_cpu_hog"] = _steady_load(
                console, node, runtime, rate, hog_seconds, process, hog=CpuHog()
            )
    finally:
        if process is not None:
            process.close()
        if runtime is not None:
            runtime.stop()
        node.stop()
    return results


def _steady_load(
    console: Console,
    node: AnvilNode,
    runtime: Runtime,
    rate: float,
    seconds: int,
    process: WatcherProcess | None,
    hog: CpuHog | None = None,
) -> dict[str, float]:
    """One steady load on a running node (1-s blocks) and backend, from fresh buyers.

    The watchers are `process`, or without it threads of this process, the backend's, as the
    benchmark had them before issue 17. While the orders flow this process only waits: the
    payments' receipts are read once every release is servable."""
    total = int(rate * seconds)
    chain, escrow, dev = runtime.chain, runtime.escrow, runtime.dev
    assert dev is not None
    # no more buyers than orders: creating an account costs milliseconds of Python
    buyers: list[LocalAccount] = [Account.create() for _ in range(min(BUYERS, total))]
    _fund(chain, buyers)
    gas_price = 3 * escrow.tx.gas_price()
    stop = threading.Event()
    if process is not None:
        seen = process.seen
    else:
        threads = (BlockWatcher(node.url, stop), ReleaseWatcher(runtime, stop))
        mirror = MirrorWatcher(runtime, stop)
        for watcher in (*threads, mirror):
            watcher.start()

        def seen() -> tuple[dict[int, float], dict[int, float], dict[int, float]]:
            return threads[0].seen, threads[1].seen, mirror.seen

    load_before = 0.0
    hog_figures: dict[str, float] = {}
    cpu_before: dict[str, float] = {}
    window_start = 0.0
    earlier: set[int] = set()

    def go() -> None:  # the payments are built: the clock starts
        nonlocal load_before, window_start
        earlier.update(seen()[1])
        load_before = os.getloadavg()[0]
        cpu_before.update(thread_cpu())
        window_start = time.perf_counter()
        what = f"{total} orders at {rate:g}/s for {seconds} s"
        if hog is not None:
            hog.start()
            what += f", {hog.processes} CPU hog processes busy"
        console.print(f"[dim]anvil, 1-s blocks: {what}[/dim]")

    try:
        hashes, sent_for = run_paced_load(
            go,
            url=node.url,
            escrow=escrow.address,
            listing_id=dev.listing_id,
            buyers=[b.address for b in buyers],
            rate=rate,
            total=total,
            gas_price=gas_price,
            gas=GAS,
        )
        deadline = time.perf_counter() + 60
        while len(set(seen()[1]) - earlier) < total:
            if time.perf_counter() > deadline:
                missing = total - len(set(seen()[1]) - earlier)
                raise RuntimeError(f"{missing} releases never appeared")
            runtime.check()
            time.sleep(0.2)  # waiting for the backend to drain the last blocks
        cpu_after = thread_cpu()  # while the watchers still run
        blocks_seen, releases_seen, mirror_seen = seen()
    finally:
        stop.set()
        if hog is not None:
            hog_figures = hog.stop()
    load_after = os.getloadavg()[0]
    window = time.perf_counter() - window_start
    cpu = {n: t - cpu_before.get(n, 0.0) for n, t in cpu_after.items()}
    console.print(
        f"[dim]CPU of the backend process's threads over the {window:.1f} s from the first "
        "payment to the last release: "
        + ", ".join(f"{n} {t:.1f} s" for n, t in sorted(cpu.items(), key=lambda x: -x[1]) if t)
        + "[/dim]"
    )
    receipts = [
        chain.w3.eth.wait_for_transaction_receipt(HexStr(h), timeout=60, poll_latency=0.1)
        for h in hashes
    ]
    orders = {_order_id(escrow, r): int(r["blockNumber"]) for r in receipts}
    if not set(orders) <= set(releases_seen):
        raise RuntimeError("the count of servable releases included other orders")
    latencies = [(releases_seen[o] - blocks_seen[b]) * 1000 for o, b in orders.items()]
    indexed = [
        (mirror_seen[o] - blocks_seen[b]) * 1000 for o, b in orders.items() if o in mirror_seen
    ]
    if indexed:
        console.print(
            f"[dim]breakdown: block -> mirror p50 {percentile(indexed, 50):.0f} ms, "
            f"p99 {percentile(indexed, 99):.0f} ms; the rest is the agent sealing, "
            "storing and delivering, and the mirror indexing the delivery[/dim]"
        )
    first_block = min(blocks_seen[b] for b in orders.values())
    last_release = max(releases_seen[o] for o in orders)
    per_block = len(orders) / max(1, len(set(orders.values())))
    console.print(
        f"[dim]sent {total} in {sent_for:.1f} s; {len(set(orders.values()))} "
        f"blocks, {per_block:.0f} orders per block; load average {load_before:.1f} -> "
        f"{load_after:.1f}; checking every release through the API[/dim]"
    )
    _check_through_api(runtime, escrow, buyers, receipts)
    runtime.check()
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "orders_per_s": round(len(orders) / (last_release - first_block), 1),
        "load_avg_1m_start": round(load_before, 2),
        "load_avg_1m_end": round(load_after, 2),
        **hog_figures,
    }


def _check_through_api(
    runtime: Runtime,
    escrow: EscrowClient,
    buyers: list[LocalAccount],
    receipts: list[Any],
) -> None:
    """Fetch every release through the API as its buyer (SIWE sessions).

    Raises:
        RuntimeError: one is missing or names another order.
    """
    assert runtime.url is not None
    by_address = {b.address: b for b in buyers}
    clients: dict[str, KamengClient] = {}
    # one transport for every buyer's client: each of its own loads the CA bundle (0.1 s)
    transport = httpx.HTTPTransport()
    for receipt in receipts:
        buyer = by_address[receipt["from"]]
        if buyer.address not in clients:
            clients[buyer.address] = KamengClient(runtime.url, transport=transport)
            clients[buyer.address].sign_in(buyer)
        oid = _order_id(escrow, receipt)
        release = clients[buyer.address].release(oid)
        if release.order_id != oid or release.buyer != buyer.address:
            raise RuntimeError(f"the API served the wrong release for order {oid}")


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """The three measurements; the dict is the JSON line ``kameng bench latency --json`` prints.

    Args:
        console: Where progress and each measurement's figures go.
        quick: Measure few orders at a low rate for a few seconds instead of the full load.

    Returns:
        ``{"embedded": {...}, "anvil_1s_blocks": {...}, "anvil_1s_blocks_cpu_hog": {...}}``,
        with the leaves named by `FIELDS`.
    """
    orders = QUICK_EMBEDDED_ORDERS if quick else EMBEDDED_ORDERS
    rate, seconds = (QUICK_RATE, QUICK_SECONDS) if quick else (RATE, SECONDS)
    hog_seconds = QUICK_HOG_SECONDS if quick else SECONDS
    result_embedded = embedded(console, orders=orders)
    console.print(f"embedded: {result_embedded}")
    results = anvil_1s_blocks(console, rate=rate, seconds=seconds, hog_seconds=hog_seconds)
    console.print(f"anvil, 1-s blocks: {results['anvil_1s_blocks']}")
    console.print(f"anvil, 1-s blocks, CPU hog: {results['anvil_1s_blocks_cpu_hog']}")
    return {"embedded": result_embedded, **results}
