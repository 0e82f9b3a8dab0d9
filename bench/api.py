"""The store under load: the HTTP API at a sale's mix of requests while orders flow.

One run against the real parts, each in its own process, as in production on one machine:

- **anvil**, mining a block every second once the world is set up;
- **`kameng serve --escrow`** on anvil and PostgreSQL (a fresh schema, migrated first) for a
  development world this process deploys (supplier, listing): the indexer, the delivery agent
  and one API worker; beside it ``API_WORKERS - 1`` more **`kameng serve --only api`**
  processes on the same database (stateless API workers, as behind a load balancer), started
  at the same time. ``API_WORKERS`` is the number of cores;
- **Locust** (`bench._api_users`), headless in a child process: ``USERS`` shoppers each making
  ``PER_USER`` requests a second, spread round robin over the API workers, drawn from the mix
  in `bench._api_mix` (catalog and listing pages, order status polls, order lists and release
  fetches by signed-in buyers, the supplier's dashboard, ``/chain``);
- **buyers paying** ``ORDERS_PER_S`` orders a second in the background (pre-signed, from their
  own process, `bench.latency.run_load`), which the delivery agent seals and delivers during
  the run.

Before the run the supplier uploads codes through the API, ``BUYERS`` buyers pay for one order
each and are delivered, and every buyer and the supplier sign in (SIWE): the mix is reads by
signed-in users, not sign-ins. The API's rate limits are scaled up (``KAMENG_RATE_LIMIT_SCALE``):
every request comes from one address here, and the limits have their own tests.

The result: requests/s, errors and p50/p99 over the whole mix and per endpoint (Locust's
figures over ``SECONDS`` s after a ``WARMUP``), the background orders paid and how many were
servable (sealed, delivered on-chain and indexed) by the end, their p99 from the payment's block
to the release being servable (``delivery_p99_ms``, polled in the database as
`bench.latency` does), the CPU each process used (percent of one core) and the load average.
Target (issue 17): >= 1,000 requests/s with p99 <= 100 ms and no errors on this machine.
``--quick`` runs the same parts at small sizes for CI; its figures say the run works, not
whether the target is met.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from eth_account import Account
from eth_typing import HexStr

from backend.api.queries import servable_releases
from backend.client import KamengClient
from backend.db import make_engine, migrate, session_factory
from backend.runtime import demo_codes, deploy_dev_world
from bench._api_mix import MIX
from bench._serve import KAMENG, Serve
from bench.latency import BlockWatcher, percentile, run_load
from contracts.chain import AnvilNode, free_port

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from rich.console import Console
    from sqlalchemy.orm import Session, sessionmaker

    from contracts.chain import Chain
    from contracts.client import EscrowClient

#: The checkout, put on the import path of the processes this starts.
ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get(
    "KAMENG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Sizes:
    """How big a run is."""

    users: int
    per_user: float
    warmup: float
    seconds: float
    buyers: int
    orders_per_s: float


FULL = Sizes(users=110, per_user=10.0, warmup=10.0, seconds=60.0, buyers=100, orders_per_s=5.0)
QUICK = Sizes(users=10, per_user=10.0, warmup=1.0, seconds=4.0, buyers=4, orders_per_s=2.0)
#: API worker processes: one per core (the other processes share them too).
API_WORKERS = max(1, os.cpu_count() or 1)

_ENDPOINT_FIGURES = ("requests_per_s", "p50_ms", "p99_ms", "errors")
FIELDS = (
    "offered_per_s",
    "requests_per_s",
    "requests",
    "errors",
    "p50_ms",
    "p99_ms",
    *(f"endpoints.{key}.{figure}" for key in MIX for figure in _ENDPOINT_FIGURES),
    "api_workers",
    "orders_paid",
    "orders_delivered",
    "delivery_p99_ms",
    "cpu_pct.api",
    "cpu_pct.backend",
    "cpu_pct.anvil",
    "cpu_pct.generator",
    "load_avg_1m",
)
"""Dotted paths of the result's leaves: rates and times are floats, counts ints."""


class ReleasePoller(threading.Thread):
    """Notes when each order's release first becomes servable (the API's own query)."""

    def __init__(self, sessions: sessionmaker[Session], stop: threading.Event) -> None:
        super().__init__(name="bench-api-releases", daemon=True)
        self.sessions = sessions
        self.stop_event = stop
        self.seen: dict[int, float] = {}

    def run(self) -> None:
        newest = 0
        while not self.stop_event.is_set():
            with self.sessions() as session:
                rows = servable_releases(session, since_block=max(0, newest - 2))
            now = time.perf_counter()
            for oid, block in rows.items():
                self.seen.setdefault(oid, now)
                newest = max(newest, block)
            self.stop_event.wait(0.02)


def _order_ids(escrow: EscrowClient, chain: Chain, hashes: list[str]) -> dict[int, int]:
    """Order id -> its payment's block, from the receipts of `hashes`."""
    out: dict[int, int] = {}
    for h in hashes:
        receipt = chain.w3.eth.wait_for_transaction_receipt(HexStr(h), timeout=60, poll_latency=0.1)
        for log in receipt["logs"]:
            decoded = escrow.codec.decode_log(dict(log))
            if decoded is not None and decoded.name == "OrderPaid":
                out[int(decoded.args["orderId"])] = int(receipt["blockNumber"])
    if len(out) != len(hashes):
        raise RuntimeError(f"{len(hashes) - len(out)} payments made no order")
    return out


def _fund(chain: Chain, accounts: list[LocalAccount]) -> None:
    for a in accounts:
        chain.make_request("anvil_setBalance", [a.address, hex(10**21)])


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their children."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def _wait_servable(sessions: sessionmaker[Session], orders: list[int], timeout: float) -> set[int]:
    """Wait until every order's release is servable, or `timeout`; return those that are."""
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            ready = set(servable_releases(session, order_ids=orders))
        if ready >= set(orders) or time.monotonic() > deadline:
            return ready
        time.sleep(0.1)  # waiting for the backend to deliver, with a deadline


def _locust(plan: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run the Locust child with `plan`; its figures.

    Raises:
        RuntimeError: it failed.
    """
    proc = subprocess.run(
        [*KAMENG[:2], "from bench._api_users import main; main()"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the Locust child failed: {proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout)
    return figures


def measure(console: Console, sizes: Sizes) -> dict[str, Any]:
    """Set the world up, run the mix against it while orders flow, and gather the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="kameng-bench-api-"))
    schema = f"bench_api_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    db_url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    env = {**os.environ, "KAMENG_RATE_LIMIT_SCALE": "1000", "PYTHONPATH": str(ROOT)}
    node = AnvilNode()
    chain = node.start()
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    servers: list[Serve] = []
    stop = threading.Event()
    try:
        escrow, dev = deploy_dev_world(chain, buyers=0, bond=1000 * 10**18)
        migrate(engine)  # once, here: the servers below start at the same time
        key_file = tmp / "supplier.key"
        key_file.write_text("0x" + bytes(dev.supplier.key).hex())
        key_file.chmod(0o600)
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        common = [
            *("--rpc-url", node.url, "--dev", "--escrow", escrow.address),
            *("--database-url", db_url, "--public-url", public),
        ]
        # The development world's delivery key, which the backend delivers with (an API-only
        # process never uses it, but asks for it).
        env["KAMENG_DELIVERY_KEY"] = "0x" + bytes(dev.delivery.key).hex()
        console.print(
            f"[dim]kameng serve on anvil and PostgreSQL ({schema}), and "
            f"{API_WORKERS - 1} kameng serve --only api[/dim]"
        )
        servers.append(
            Serve(
                [*common, "--supplier-key-file", str(key_file), "--port", str(port)],
                tmp / "serve-0.log",
                env,
            )
        )
        for i in range(1, API_WORKERS):
            servers.append(
                Serve(
                    [*common, "--only", "api", "--port", str(free_port())], tmp / f"s-{i}.log", env
                )
            )
        for server in servers:
            server.wait_ready()
        main = servers[0]
        listing_id, supplier = dev.listing_id, dev.supplier
        background = int(sizes.orders_per_s * (sizes.warmup + sizes.seconds))
        client = KamengClient(main.url, timeout=600)
        supplier_token = client.sign_in(supplier).token
        client.upload_codes(listing_id, b"\n".join(demo_codes(sizes.buyers + background + 50)))

        console.print(f"[dim]{sizes.buyers} buyers pay and are delivered before the run[/dim]")
        buyers: list[LocalAccount] = [Account.create() for _ in range(sizes.buyers)]
        flow: list[LocalAccount] = [Account.create() for _ in range(background)]
        _fund(chain, buyers + flow)
        gas_price = 3 * int(chain.w3.eth.gas_price)
        load = {
            "url": node.url,
            "escrow": escrow.address,
            "listing_id": listing_id,
            "gas_price": gas_price,
            "chain_id": chain.chain_id,
        }
        hashes, _ = run_load(
            **load, keys=["0x" + bytes(b.key).hex() for b in buyers], rate=200.0, total=len(buyers)
        )
        first = _order_ids(escrow, chain, hashes)
        by_buyer = dict(zip((b.address for b in buyers), first, strict=True))
        ready = _wait_servable(sessions, list(first), timeout=120)
        if ready != set(first):
            raise RuntimeError(f"{len(set(first) - ready)} orders were not delivered in 120 s")
        plan_buyers = []
        for b in buyers:
            token = KamengClient(main.url).sign_in(b).token
            plan_buyers.append({"token": token, "orders": [by_buyer[b.address]]})

        # From here blocks come every second, as on a live chain.
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("evm_setIntervalMining", [1])
        blocks = BlockWatcher(node.url, stop)
        releases = ReleasePoller(sessions, stop)
        blocks.start()
        releases.start()
        paid: dict[str, Any] = {}

        def pay() -> None:
            paid["hashes"], _ = run_load(
                **load,
                keys=["0x" + bytes(b.key).hex() for b in flow],
                rate=sizes.orders_per_s,
                total=background,
            )

        payer = threading.Thread(target=pay, name="bench-api-payments", daemon=True)
        plan = {
            "hosts": [s.url for s in servers],
            "buyers": plan_buyers,
            "supplier_token": supplier_token,
            "listing_id": listing_id,
            "users": sizes.users,
            "per_user": sizes.per_user,
            "warmup": sizes.warmup,
            "seconds": sizes.seconds,
        }
        console.print(
            f"[dim]{sizes.users} users x {sizes.per_user:g} requests/s on {len(servers)} API "
            f"workers for {sizes.warmup:g} + {sizes.seconds:g} s, {sizes.orders_per_s:g} "
            "orders/s paid meanwhile[/dim]"
        )
        api_pids = [s.proc.pid for s in servers[1:]]
        main_children = _children(main.proc.pid)
        cpu_before = {
            "api": _cpu(api_pids) + sum(_cpu([c]) for c in main_children),
            "backend": _own_cpu(main.proc.pid),
            "anvil": _cpu([node.process.pid]) if node.process is not None else 0.0,
        }
        load_before = os.getloadavg()[0]
        payer.start()
        started = time.perf_counter()
        figures = _locust(plan, timeout=sizes.warmup + sizes.seconds + 120)
        took = time.perf_counter() - started
        cpu_after = {
            "api": _cpu(api_pids) + sum(_cpu([c]) for c in main_children),
            "backend": _own_cpu(main.proc.pid),
            "anvil": _cpu([node.process.pid]) if node.process is not None else 0.0,
        }
        load_after = os.getloadavg()[0]
        payer.join(timeout=sizes.warmup + sizes.seconds + 300)
        if "hashes" not in paid:
            raise RuntimeError("the background payments did not finish (see the log above)")
        orders = _order_ids(escrow, chain, paid["hashes"])
        delivered = _wait_servable(sessions, list(orders), timeout=30)
        stop.set()
        times = [
            (releases.seen[o] - blocks.seen[b]) * 1000
            for o, b in orders.items()
            if o in releases.seen and b in blocks.seen
        ]
        for server in servers:
            if server.proc.poll() is not None:
                raise RuntimeError(f"kameng serve died:\n{server.log.read_text()[-3000:]}")
    finally:
        stop.set()
        for server in reversed(servers):
            server.stop()
        node.stop()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    # The servers' logs are kept only when the run failed (the error above names the folder's
    # files by their tails).
    shutil.rmtree(tmp, ignore_errors=True)
    total = figures["total"]
    cpu = {k: round((cpu_after[k] - cpu_before[k]) / took * 100, 1) for k in cpu_before}
    cpu["generator"] = round(figures["generator_cpu_s"] / figures["seconds"] * 100, 1)
    for sample in figures["error_samples"]:
        console.print(f"[red]error:[/red] {sample}")
    return {
        "offered_per_s": round(sizes.users * sizes.per_user, 1),
        "requests_per_s": float(total["requests_per_s"]),
        "requests": int(total["requests"]),
        "errors": int(total["errors"]),
        "p50_ms": float(total["p50_ms"]),
        "p99_ms": float(total["p99_ms"]),
        "endpoints": {
            key: {f: figures["endpoints"][key][f] for f in _ENDPOINT_FIGURES} for key in MIX
        },
        "api_workers": len(servers),
        "orders_paid": len(orders),
        "orders_delivered": len(delivered),
        "delivery_p99_ms": round(percentile(times, 99), 1) if times else 0.0,
        "cpu_pct": cpu,
        "load_avg_1m": round(max(load_before, load_after), 2),
    }


def _children(pid: int) -> list[int]:
    """The pids of a process's children now (the API worker of a `kameng serve`)."""
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def _own_cpu(pid: int) -> float:
    """CPU seconds used so far by one process alone (not its children)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """The measurement; the dict is the JSON line ``kameng bench api --json`` prints.

    Args:
        console: Where progress and the figures go.
        quick: Few users for a few seconds instead of the full load.

    Returns:
        The figures named by `FIELDS`.
    """
    result = measure(console, QUICK if quick else FULL)
    console.print(
        f"{result['requests_per_s']:,.0f} requests/s (offered {result['offered_per_s']:,.0f}), "
        f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
        f"{result['errors']} errors; load average {result['load_avg_1m']}"
    )
    return result
