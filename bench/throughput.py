"""The most orders per second the backend carries: delivered rate and latency under rising load.

One run on anvil mining a block every second, with the backend (`Runtime.local`: API, indexer,
delivery agent, as ``kameng serve`` runs them) in this process on PostgreSQL, in a schema of
its own. A load generator in another process (`load_main`) offers ``buy`` transactions at a
fixed rate in steps (`STEPS`, each held `STEP_SECONDS`), stopping after the first step whose
delivered rate falls behind (a step that only misses the p99 target does not stop the run: the
next shows how much more it carries, latency aside).

The generator signs every transaction of a step before the step starts, with keys the node
holds (anvil's dev accounts, ``eth_signTransaction`` in JSON-RPC batches: signing in Python
costs about 11 ms a transaction here), then sends them raw at the offered rate, in one
JSON-RPC batch per 5-ms tick. It reports what it achieved, and how fast it could have sent:
transactions over the seconds it spent inside its send calls (``send_capacity_per_s``).

Per step:

- ``offered_per_s``: the rate asked; ``sent_per_s``: the rate the generator achieved.
- ``delivered_per_s``: the step's orders whose release was servable by the API (the latency
  bench's definition: stored, and delivered on-chain with its digest in the mirror,
  `backend.api.queries.servable_releases`) within `GRACE_S` of the last send, divided by the
  seconds between the first and last send. ``backlog_at_end``: the step's orders not servable
  then. ``kept_up``: delivered at least `KEEP_UP` of the sent rate and p99 <= `P99_TARGET_MS`.
- ``p50_ms``, ``p99_ms``, ``max_ms``: from the order's block first seen (polled every 5 ms)
  to its release servable (polled every 10 ms), over every order of the step (the backlog
  drains before the next step; an order still not servable after `DRAIN_S` counts as the time
  waited).
- ``deliver_txs_per_block``, ``orders_per_deliver_tx``: from the OrderDelivered logs of the
  step's blocks.
- ``cpu_*_s``: CPU seconds (user + system, from /proc) during the step of the agent's thread,
  the indexer's thread, the rest of this process (API, the bench's watchers), anvil, the
  PostgreSQL server processes serving this run's connections, and the generator while sending.

The baseline (``baseline``) is the same backend delivering naively: one ``deliver`` per order,
the next sent only once the last one's receipt is in (the agent with a batch of one, which
waits for each intent to be mined), offered `BASELINE_RATE` orders/s for `BASELINE_SECONDS`.

While the steps run, a sampler thread takes the agent thread's stack every `SAMPLE_S` (the
way py-spy does, from inside: ``sys._current_frames``) and the console gets, for the last two
steps, the functions the agent spent its wall time in.

The last line of ``kameng bench throughput --json`` is the result: `FIELDS` at the top, and
``steps``, a list of dicts with `STEP_FIELDS`. ``max_sustained_orders_per_s`` is the highest
step rate that kept up (0 if none); ``ratio`` is it over the baseline's delivered rate;
``peak_delivered_per_s`` is the highest delivered rate of any step, latency aside, and
``peak_ratio`` it over the baseline's.
``--quick`` runs `QUICK_STEPS` for `QUICK_STEP_SECONDS` and a shorter baseline, for CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import requests
import sqlalchemy as sa
from eth_abi import encode as abi_encode
from eth_utils import keccak
from nacl.public import PrivateKey

from backend.api.queries import servable_releases
from backend.client import KamengClient
from backend.config import Settings
from backend.runtime import Runtime, demo_codes, deploy_dev_world
from bench.latency import BlockWatcher, ReleaseWatcher, percentile
from contracts.chain import AnvilNode

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from rich.console import Console

    from contracts.client import EscrowClient

STEPS = (50, 100, 200, 400, 800)
STEP_SECONDS = 30
QUICK_STEPS = (10, 20)
QUICK_STEP_SECONDS = 3
BASELINE_RATE = 2.0
BASELINE_SECONDS = 10
QUICK_BASELINE_SECONDS = 3
#: The generator's buyers: anvil's dev accounts past the first ten.
BUYERS = 400
QUICK_BUYERS = 40
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Seconds after the last send within which an order's release counts as delivered in its step
#: (its block comes at most 1 s after the send, and the target allows 1.5 s after the block).
GRACE_S = 2.5
KEEP_UP = 0.95
P99_TARGET_MS = 1500.0
DRAIN_S = 60.0
SAMPLE_S = 0.005
#: anvil's block gas limit for the run: 800 buys a second at about 110,000 gas each, and a
#: batched deliver of several hundred orders, fit a block with room to spare.
BLOCK_GAS_LIMIT = 300_000_000
BUY_GAS = 200_000
STEP_FIELDS = (
    "offered_per_s",
    "sent_per_s",
    "send_capacity_per_s",
    "orders",
    "delivered_per_s",
    "backlog_at_end",
    "kept_up",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "blocks",
    "deliver_txs_per_block",
    "orders_per_deliver_tx",
    "cpu_agent_s",
    "cpu_indexer_s",
    "cpu_backend_other_s",
    "cpu_anvil_s",
    "cpu_postgres_s",
    "cpu_generator_s",
)
FIELDS = (
    "max_sustained_orders_per_s",
    "baseline_orders_per_s",
    "ratio",
    "peak_delivered_per_s",
    "peak_ratio",
    "delivery_batch_size",
    "load_average_1m",
    "cpus",
    "steps",
    *(f"baseline.{f}" for f in STEP_FIELDS),
)
"""Dotted paths of the result's leaves; ``steps`` is a list of dicts with `STEP_FIELDS`."""

_BUY_SELECTOR = keccak(text="buy(uint256,uint32,uint256,address,bytes32)")[:4]
_BUY_TYPES = ["uint256", "uint32", "uint256", "address", "bytes32"]
_CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the load generator


def _rpc_batch(
    session: requests.Session, url: str, calls: list[tuple[str, list[Any]]]
) -> list[Any]:
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    replies: list[Any] = session.post(url, json=body, timeout=120).json()
    replies.sort(key=lambda r: r["id"])
    return replies


def _sign(
    session: requests.Session, args: dict[str, Any], total: int
) -> tuple[list[str], dict[str, int]]:
    """Sign `total` buys round-robin over the buyers with the node's keys."""
    buyers: list[str] = args["buyers"]
    nonces: dict[str, int] = dict(args["nonces"])
    unsigned: list[tuple[str, list[Any]]] = []
    for i in range(total):
        buyer = buyers[i % len(buyers)]
        data = _BUY_SELECTOR + abi_encode(
            _BUY_TYPES,
            [
                args["listing_id"],
                1,
                args["price"],
                "0x" + "00" * 20,
                bytes.fromhex(args["keys"][buyer]),
            ],
        )
        tx = {
            "from": buyer,
            "to": args["escrow"],
            "data": "0x" + data.hex(),
            "value": hex(args["price"]),
            "nonce": hex(nonces[buyer]),
            "gas": hex(BUY_GAS),
            "gasPrice": hex(args["gas_price"]),
            "chainId": hex(args["chain_id"]),
        }
        nonces[buyer] += 1
        unsigned.append(("eth_signTransaction", [tx]))
    raws: list[str] = []
    for start in range(0, total, 1000):
        for reply in _rpc_batch(session, args["url"], unsigned[start : start + 1000]):
            if "error" in reply:
                raise RuntimeError(f"signing failed: {reply['error']}")
            raws.append(str(reply["result"]))
    return raws, nonces


def _send(session: requests.Session, url: str, raws: list[str], rate: float) -> dict[str, Any]:
    """Send `raws` at `rate` a second, each 5-ms tick's due ones in one batch."""
    sent = errors = 0
    busy = 0.0
    cpu0 = sum(os.times()[:2])
    first = time.perf_counter()
    while sent < len(raws):
        due = min(len(raws), int((time.perf_counter() - first) * rate) + 1)
        if due > sent:
            t = time.perf_counter()
            replies = _rpc_batch(
                session, url, [("eth_sendRawTransaction", [r]) for r in raws[sent:due]]
            )
            busy += time.perf_counter() - t
            errors += sum(1 for r in replies if "error" in r)
            sent = due
        time.sleep(0.005)  # pacing the load generator
    last = time.perf_counter()
    return {
        "sent": sent,
        "errors": errors,
        "first": first,
        "last": last,
        "busy_s": busy,
        "cpu_s": sum(os.times()[:2]) - cpu0,
    }


def load_main() -> None:
    """Entry of the load generator's process: arguments as JSON on stdin, result on stdout."""
    args = json.loads(sys.stdin.read())
    session = requests.Session()
    total = int(args["rate"] * args["seconds"])
    t = time.perf_counter()
    raws, nonces = _sign(session, args, total)
    signed_s = time.perf_counter() - t
    out = _send(session, args["url"], raws, float(args["rate"]))
    out.update(nonces=nonces, sign_s=signed_s)
    sys.stdout.write(json.dumps(out))


def run_load(args: dict[str, Any]) -> dict[str, Any]:
    """Run `load_main` in a child process (buyers are other machines; in this process it would
    compete with the backend for the interpreter lock).

    Raises:
        RuntimeError: the child failed, or the node refused some of its transactions.
    """
    proc = subprocess.run(
        [sys.executable, "-c", "from bench.throughput import load_main; load_main()"],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        check=False,
        timeout=args["seconds"] * 4 + 300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    if out["errors"]:
        raise RuntimeError(f"the node refused {out['errors']} of the generator's transactions")
    return out


# ---------------------------------------------------------------- the watchers' process


def watch_main() -> None:
    """Entry of the watchers' process: `BlockWatcher` and `ReleaseWatcher` (the latency bench's)
    against the node and the database named on stdin's first line (JSON); each later line asks
    for what they saw so far, answered as one JSON line on stdout. They poll every 5 and 10 ms,
    and run apart so that their polling never takes the backend's interpreter lock."""
    from types import SimpleNamespace

    from backend.db import make_engine, session_factory

    args = json.loads(sys.stdin.readline())
    stop = threading.Event()
    backend: Any = SimpleNamespace(sessions=session_factory(make_engine(args["database_url"])))
    blocks = BlockWatcher(args["url"], stop)
    releases = ReleaseWatcher(backend, stop)
    blocks.start()
    releases.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for _ in sys.stdin:
        seen = {"blocks": dict(blocks.seen), "releases": dict(releases.seen)}
        sys.stdout.write(json.dumps(seen) + "\n")
        sys.stdout.flush()
    stop.set()


class Watchers:
    """The watchers' process (`watch_main`)."""

    def __init__(self, url: str, database_url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bench.throughput import watch_main; watch_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"url": url, "database_url": database_url}) + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the watchers' process did not start")

    def seen(self) -> tuple[dict[int, float], dict[int, float]]:
        """When each block first appeared, and when each order's release became servable."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return (
            {int(k): float(v) for k, v in out["blocks"].items()},
            {int(k): float(v) for k, v in out["releases"].items()},
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


# ---------------------------------------------------------------- measuring


def _cpu(path: str) -> float:
    """CPU seconds (user + system) of /proc/<pid>[/task/<tid>]/stat; 0 if it is gone."""
    try:
        with open(path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK


class CpuMeter:
    """CPU seconds of the backend's threads, anvil and this run's PostgreSQL server processes."""

    def __init__(self, runtime: Runtime, anvil_pid: int, app_name: str) -> None:
        self.runtime = runtime
        self.anvil_pid = anvil_pid
        self.app_name = app_name
        self.admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")

    def _threads(self) -> dict[str, int]:
        return {
            name: int(t.native_id or 0)
            for name, t in self.runtime.worker_threads.items()
            if name in ("agent", "indexer")
        }

    def _pg_pids(self) -> list[int]:
        with self.admin.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                {"a": self.app_name},
            ).all()
        return [int(r[0]) for r in rows]

    def snapshot(self) -> dict[str, Any]:
        """Cumulative CPU seconds by part, and per PostgreSQL server process."""
        pid = os.getpid()
        threads = {n: _cpu(f"/proc/{pid}/task/{tid}/stat") for n, tid in self._threads().items()}
        return {
            "process": _cpu(f"/proc/{pid}/stat"),
            "agent": threads.get("agent", 0.0),
            "indexer": threads.get("indexer", 0.0),
            "anvil": _cpu(f"/proc/{self.anvil_pid}/stat"),
            "pg": {p: _cpu(f"/proc/{p}/stat") for p in self._pg_pids()},
        }

    @staticmethod
    def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
        """CPU seconds spent between snapshots `a` and `b`."""
        agent = b["agent"] - a["agent"]
        indexer = b["indexer"] - a["indexer"]
        pg = sum(v - a["pg"].get(p, v) for p, v in b["pg"].items())
        return {
            "cpu_agent_s": round(agent, 2),
            "cpu_indexer_s": round(indexer, 2),
            "cpu_backend_other_s": round(b["process"] - a["process"] - agent - indexer, 2),
            "cpu_anvil_s": round(b["anvil"] - a["anvil"], 2),
            "cpu_postgres_s": round(pg, 2),
        }


class StackSampler(threading.Thread):
    """Samples one thread's stack every `SAMPLE_S`: wall time by function, self and inclusive."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.stop_event = stop
        self.target: int | None = None
        self.samples = 0
        self.inclusive: Counter[str] = Counter()
        self.leaf: Counter[str] = Counter()

    def reset(self) -> None:
        """Start a fresh profile."""
        self.samples = 0
        self.inclusive = Counter()
        self.leaf = Counter()

    @staticmethod
    def _label(frame: FrameType) -> str:
        code = frame.f_code
        path = code.co_filename
        for marker in ("site-packages/", "/work/main/", "lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{code.co_name}"

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_S):
            if self.target is None:
                continue
            frame = sys._current_frames().get(self.target)
            if frame is None:
                continue
            self.samples += 1
            leaf = self._label(frame)
            own = ""
            seen: set[str] = set()
            while frame is not None:
                label = self._label(frame)
                if label.endswith(":run_forever"):
                    break  # the thread's machinery above the agent's loop
                seen.add(label)
                if not own and label.startswith(("backend/", "contracts/", "indexer/")):
                    own = label
                frame = frame.f_back
            self.inclusive.update(seen)
            self.leaf[f"{self._kind(leaf)} in {own or leaf}"] += 1

    @staticmethod
    def _kind(leaf: str) -> str:
        """What a sample's innermost frame was doing: waiting for PostgreSQL, for the node (or
        another socket), idling between passes, or running Python."""
        if leaf.startswith("psycopg/") and leaf.endswith(":wait"):
            return "postgres"
        if leaf.startswith(("urllib3/", "http/", "socket", ".11/socket", ".11/ssl")) or (
            "socket" in leaf or "http/client" in leaf
        ):
            return "node"
        if leaf.endswith("threading.py:wait"):
            return "idle"
        return "cpu"

    def report(self, top: int = 25) -> list[tuple[str, float]]:
        """The `top` functions by inclusive share of the samples, then what the samples' own
        code (innermost kameng frame) was doing, by share."""
        n = max(1, self.samples)
        rows = [(name, 100 * count / n) for name, count in self.inclusive.most_common(top)]
        rows.append(("-- by (what, innermost kameng function) --", 0.0))
        rows += [(name, 100 * count / n) for name, count in self.leaf.most_common(top)]
        return rows


def _paid_orders(escrow: EscrowClient, first: int, last: int) -> dict[int, int]:
    """Order id -> block of every OrderPaid in blocks `first`..`last`."""
    topic = "0x" + escrow.codec.topic("OrderPaid").hex()
    out: dict[int, int] = {}
    for raw in escrow.logs(first, last, [topic]):
        ev = escrow.codec.decode_log(raw)
        if ev is not None:
            out[int(ev.args["orderId"])] = int(ev.block_number)
    return out


def _deliveries(escrow: EscrowClient, first: int, last: int) -> tuple[int, int]:
    """(deliver transactions, orders delivered) in blocks `first`..`last`."""
    topic = "0x" + escrow.codec.topic("OrderDelivered").hex()
    txs: Counter[str] = Counter()
    for raw in escrow.logs(first, last, [topic]):
        ev = escrow.codec.decode_log(raw)
        if ev is not None:
            txs[str(ev.tx_hash)] += 1
    return len(txs), sum(txs.values())


# ---------------------------------------------------------------- the run


class Bench:
    """The chain, the backend, the watchers and the generator's accounts of one run."""

    def __init__(self, console: Console, quick: bool) -> None:
        self.console = console
        self.quick = quick
        self.buyer_count = QUICK_BUYERS if quick else BUYERS
        self.node = AnvilNode(extra_args=["--accounts", str(10 + self.buyer_count)])
        self.stop = threading.Event()
        self.schema = f"bench_tp_{uuid.uuid4().hex[:10]}"
        self.app_name = f"kameng-{self.schema}"
        self.admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        self.runtime: Runtime | None = None
        self.codes = 0
        self.uploaded = 0

    def start(self, stock: int) -> None:
        """Start anvil and the backend on a fresh PostgreSQL schema, upload `stock` codes while
        the node still mines on demand; pick the buyers."""
        chain = self.node.start()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
        url = f"{POSTGRES}?application_name={self.app_name}&options=-csearch_path%3D{self.schema}"
        self.settings = Settings(
            environment="development",
            order_source="auto",
            rate_limit_scale=1000.0,
            database_url=url,
        )
        escrow, dev = deploy_dev_world(chain, buyers=0, bond=1000 * 10**18)
        chain.make_request("evm_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])
        runtime = Runtime.local(
            self.settings,
            chain=chain,
            escrow=escrow,
            delivery_account=dev.delivery,
            suppliers=[dev.supplier],
            database_url=url,
        )
        runtime.dev = dev
        self.runtime = runtime
        runtime.start()
        accounts = [str(a) for a in chain.make_request("eth_accounts", [])]
        self.buyers = accounts[10 : 10 + self.buyer_count]
        self.nonces = {
            a: int(chain.make_request("eth_getTransactionCount", [a, "pending"]), 16)
            for a in self.buyers
        }
        self.keys = {a: bytes(PrivateKey.generate().public_key).hex() for a in self.buyers}
        self.gas_price = 3 * escrow.tx.gas_price()
        self._upload(stock)
        self.codes = stock
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("evm_setIntervalMining", [1])
        self.watchers = Watchers(self.node.url, url)
        self.sampler = StackSampler(self.stop)
        self.sampler.start()
        assert self.node.process is not None
        self.cpu = CpuMeter(runtime, self.node.process.pid, self.app_name)

    def close(self) -> None:
        """Stop everything and drop the schema."""
        self.stop.set()
        if hasattr(self, "watchers"):
            self.watchers.close()
        if self.runtime is not None:
            self.runtime.stop()
        self.node.stop()
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        self.admin.dispose()
        if hasattr(self, "cpu"):
            self.cpu.admin.dispose()

    def _idle(self) -> int:
        """Wait for the node's pool to empty; the head once it has."""
        assert self.runtime is not None
        chain = self.runtime.chain
        while True:
            status = chain.make_request("txpool_status", [])
            if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
                return int(chain.make_request("eth_blockNumber", []), 16)
            time.sleep(0.1)  # waiting for the next 1-s block to take the pool

    def _upload(self, count: int) -> None:
        """Upload `count` more codes through the API (as the supplier), 5,000 at a time."""
        runtime = self.runtime
        assert runtime is not None and runtime.dev is not None and runtime.url is not None
        client = KamengClient(runtime.url, timeout=600)
        client.sign_in(runtime.dev.supplier)
        for start in range(0, count, 5000):
            n = min(5000, count - start)
            codes = demo_codes(n, self.uploaded)
            client.upload_codes(runtime.dev.listing_id, b"\n".join(codes))
            self.uploaded += n

    def step(
        self, rate: float, seconds: float, at_cutoff: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Offer `rate` orders/s for `seconds` and measure the delivery; `at_cutoff` is called
        when the step's time is up, before its backlog drains."""
        runtime = self.runtime
        assert runtime is not None and runtime.dev is not None
        total = int(rate * seconds)
        if self.codes < total:  # stock for the step, uploaded before its clock starts
            self._upload(total - self.codes + 20)
            self.codes = total + 20
        self.codes -= total
        start_block = self._idle() + 1
        self.sampler.target = None
        self.sampler.reset()
        agent = runtime.worker_threads["agent"]
        args = {
            "url": self.node.url,
            "escrow": runtime.escrow.address,
            "listing_id": runtime.dev.listing_id,
            "price": 10**16,
            "buyers": self.buyers,
            "nonces": self.nonces,
            "keys": self.keys,
            "rate": rate,
            "seconds": seconds,
            "gas_price": self.gas_price,
            "chain_id": runtime.chain.chain_id,
        }
        # The generator signs first: the CPU meter starts with the first send, not before.
        before: dict[str, Any] = {}

        def arm() -> None:
            while not self.stop.is_set():
                if int(runtime.chain.make_request("txpool_status", [])["pending"], 16):
                    before.update(self.cpu.snapshot())
                    before["head"] = int(runtime.chain.make_request("eth_blockNumber", []), 16)
                    self.sampler.target = agent.ident
                    return
                time.sleep(0.002)  # watching for the generator's first send

        armer = threading.Thread(target=arm, daemon=True)
        armer.start()
        out = run_load(args)
        self.nonces = out["nonces"]
        armer.join()
        end_block = self._idle()
        orders = _paid_orders(runtime.escrow, start_block, end_block)
        if len(orders) != out["sent"]:
            raise RuntimeError(f"{out['sent']} buys sent, {len(orders)} orders paid")
        cutoff = out["last"] + GRACE_S
        while time.perf_counter() < cutoff:
            runtime.check()
            time.sleep(0.05)  # until the step's cut-off
        cut_block = int(runtime.chain.make_request("eth_blockNumber", []), 16)
        if at_cutoff is not None:
            at_cutoff()
        deadline = time.perf_counter() + DRAIN_S
        while time.perf_counter() < deadline:
            runtime.check()
            with runtime.sessions() as session:
                if set(orders) <= set(servable_releases(session, order_ids=orders)):
                    break
            time.sleep(0.25)  # letting the backlog drain before the next step
        after = self.cpu.snapshot()
        self.sampler.target = None
        time.sleep(0.05)  # the watchers' next poll sees the last release too
        now = time.perf_counter()
        blocks, releases = self.watchers.seen()
        on_time = sum(1 for o in orders if releases.get(o, float("inf")) <= cutoff)
        latencies = [(releases.get(o, now) - blocks[b]) * 1000 for o, b in orders.items()]
        txs, delivered = _deliveries(runtime.escrow, start_block, cut_block)
        span = out["last"] - out["first"]
        sent_per_s = out["sent"] / span if span > 0 else float(out["sent"])
        delivered_per_s = on_time / span if span > 0 else float(on_time)
        p99 = percentile(latencies, 99)
        result: dict[str, Any] = {
            "offered_per_s": float(rate),
            "sent_per_s": round(sent_per_s, 1),
            "send_capacity_per_s": round(out["sent"] / max(out["busy_s"], 1e-6), 1),
            "orders": len(orders),
            "delivered_per_s": round(delivered_per_s, 1),
            "backlog_at_end": len(orders) - on_time,
            "kept_up": delivered_per_s >= KEEP_UP * sent_per_s and p99 <= P99_TARGET_MS,
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(max(latencies), 1),
            "blocks": end_block - before["head"],
            "deliver_txs_per_block": round(txs / max(1, cut_block - before["head"]), 2),
            "orders_per_deliver_tx": round(delivered / max(1, txs), 1),
            **self.cpu.delta(before, after),
            "cpu_generator_s": round(float(out["cpu_s"]), 2),
        }
        self.console.print(f"[dim]  signed {out['sent']} in {out['sign_s']:.1f} s; {result}[/dim]")
        return result

    def baseline(self, seconds: float) -> dict[str, Any]:
        """The naive delivery: the agent with a batch of one, each sent once the last mined."""
        runtime = self.runtime
        assert runtime is not None and runtime.agent is not None
        agent = runtime.agent
        agent.settings = self.settings.model_copy(update={"delivery_batch_size": 1})

        def batched() -> None:
            agent.settings = self.settings  # the backlog drains batched

        try:
            return self.step(BASELINE_RATE, seconds, at_cutoff=batched)
        finally:
            batched()


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """The baseline, then the steps; the dict is the JSON line ``kameng bench throughput``
    prints.

    Args:
        console: Where progress and each step's figures go.
        quick: `QUICK_STEPS` of `QUICK_STEP_SECONDS` and a short baseline, for CI.

    Returns:
        The figures named by `FIELDS`, with ``steps`` a list of dicts with `STEP_FIELDS`.
    """
    steps, seconds = (QUICK_STEPS, QUICK_STEP_SECONDS) if quick else (STEPS, STEP_SECONDS)
    load = os.getloadavg()[0]
    console.print(f"[dim]load average {os.getloadavg()}, {os.cpu_count()} cpus[/dim]")
    bench = Bench(console, quick)
    results: list[dict[str, Any]] = []
    sampled: list[tuple[float, list[tuple[str, float]], int]] = []
    try:
        base_seconds = QUICK_BASELINE_SECONDS if quick else BASELINE_SECONDS
        first = steps if quick else steps[:2]  # the rest upload their stock before they start
        bench.start(int(BASELINE_RATE * base_seconds) + sum(r * seconds for r in first) + 20)
        console.print(f"[bold]baseline[/bold]: one deliver per order, {BASELINE_RATE:g} orders/s")
        base = bench.baseline(base_seconds)
        for rate in steps:
            console.print(f"[bold]step[/bold]: {rate} orders/s for {seconds} s")
            result = bench.step(float(rate), float(seconds))
            results.append(result)
            sampled.append((float(rate), bench.sampler.report(), bench.sampler.samples))
            if result["delivered_per_s"] < KEEP_UP * result["sent_per_s"]:
                break  # it clearly fails: a backlog grows (a p99 miss alone goes on)
        assert bench.runtime is not None
        bench.runtime.check()
    finally:
        bench.close()
    for step_rate, rows, samples in sampled[-2:]:
        console.print(f"[bold]agent thread at {step_rate:g} orders/s[/bold] ({samples} samples)")
        for name, share in rows:
            console.print(f"  {share:5.1f}%  {name}")
    best = max((r["offered_per_s"] for r in results if r["kept_up"]), default=0.0)
    base_rate = float(base["delivered_per_s"])
    peak = max((float(r["delivered_per_s"]) for r in results), default=0.0)
    return {
        "max_sustained_orders_per_s": int(best),
        "baseline_orders_per_s": base_rate,
        "ratio": round(best / base_rate, 1) if base_rate else 0.0,
        "peak_delivered_per_s": peak,
        "peak_ratio": round(peak / base_rate, 1) if base_rate else 0.0,
        "delivery_batch_size": bench.settings.delivery_batch_size,
        "load_average_1m": round(load, 2),
        "cpus": os.cpu_count() or 0,
        "steps": results,
        "baseline": base,
    }
