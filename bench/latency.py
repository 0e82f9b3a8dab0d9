"""Latency from a payment's block to its sealed release being fetchable, and throughput.

The API serves a release only once its delivery is on-chain and indexed (audit finding 10), so
this is payment block -> sealed, delivered on-chain, indexed and served.

Two runs of the whole backend in this process (API under uvicorn, indexer, delivery agent, on
SQLite), each against a real chain:

- **embedded**: eth-tester, which mines each transaction in its own block inside
  ``eth_sendRawTransaction``. One order at a time: the clock starts when the send returns (the
  block exists) and stops when ``GET /buyer/orders/{id}/release`` first answers 200 (polled
  every 5 ms over HTTP, with a signed request): the deliver transaction is mined and indexed.
- **anvil_1s_blocks**: anvil mining a block every second, while buyers pay at a steady
  ``RATE`` orders per second (signed locally, sent without waiting) for ``SECONDS`` seconds.
  A watcher polls the node every 5 ms and notes when each block first appears; a poller asks
  the database every 10 ms which releases the API would serve (the API's own query,
  `backend.api.queries.servable_releases`: stored, and delivered on-chain with that digest in
  the mirror; every release is then fetched through the API to check it). Latency is the time
  from the order's block appearing to its release becoming servable. ``orders_per_s`` is the
  number of orders divided by the time from the first order's block to the last release:
  orders paid, sealed, delivered and servable per second, end to end.

The last line of ``kameng bench latency --json`` is
``{"embedded": {"p50_ms": N, "p99_ms": N}, "anvil_1s_blocks": {"p50_ms": N, "p99_ms": N,
"orders_per_s": N}}``. Targets (issue 3): embedded p99 <= 500 ms; anvil with 1-s blocks at
>= 50 orders/s, p99 <= 1,500 ms. ``--quick`` runs both on the same real parts at small sizes
(``QUICK_EMBEDDED_ORDERS``; ``QUICK_RATE`` orders/s for ``QUICK_SECONDS`` s), for CI: its
figures say the run works, not whether the targets are met.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

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
FIELDS = (
    "embedded.p50_ms",
    "embedded.p99_ms",
    "anvil_1s_blocks.p50_ms",
    "anvil_1s_blocks.p99_ms",
    "anvil_1s_blocks.orders_per_s",
)
"""Dotted paths of the result's leaves, all floats: latencies in ms and a rate in orders/s."""


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
            self.stop_event.wait(0.005)


class ReleaseWatcher(threading.Thread):
    """Notes the wall time at which each order's release first becomes servable by the API
    (stored, and delivered on-chain with its digest in the mirror)."""

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="bench-releases", daemon=True)
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
            self.stop_event.wait(0.01)


class MirrorWatcher(threading.Thread):
    """Notes the wall time at which each order first appears in the indexer's mirror (for the
    breakdown: block -> mirror -> release)."""

    def __init__(self, runtime: Runtime, stop: threading.Event) -> None:
        super().__init__(name="bench-mirror", daemon=True)
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
            self.stop_event.wait(0.01)


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


def anvil_1s_blocks(
    console: Console, rate: float = RATE, seconds: int = SECONDS
) -> dict[str, float]:
    """Payment block to fetchable (so delivered) release on anvil with 1-s blocks, under a
    steady load."""
    total = int(rate * seconds)
    node = AnvilNode()
    chain = node.start()
    runtime: Runtime | None = None
    stop = threading.Event()
    try:
        runtime = start_backend(chain, _settings(), codes=total + 100)
        escrow, dev = runtime.escrow, runtime.dev
        assert dev is not None
        buyers: list[LocalAccount] = [Account.create() for _ in range(BUYERS)]
        _fund(chain, buyers)
        chain_id = chain.chain_id
        gas_price = 3 * escrow.tx.gas_price()
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("evm_setIntervalMining", [1])
        blocks = BlockWatcher(node.url, stop)
        releases = ReleaseWatcher(runtime, stop)
        mirror = MirrorWatcher(runtime, stop)
        for watcher in (blocks, releases, mirror):
            watcher.start()
        console.print(f"[dim]anvil, 1-s blocks: {total} orders at {rate:g}/s for {seconds} s[/dim]")
        hashes, sent_for = run_load(
            url=node.url,
            escrow=escrow.address,
            listing_id=dev.listing_id,
            keys=["0x" + bytes(b.key).hex() for b in buyers],
            rate=rate,
            total=total,
            gas_price=gas_price,
            chain_id=chain_id,
        )
        receipts = [
            chain.w3.eth.wait_for_transaction_receipt(HexStr(h), timeout=60, poll_latency=0.1)
            for h in hashes
        ]
        orders = {_order_id(escrow, r): int(r["blockNumber"]) for r in receipts}
        deadline = time.perf_counter() + 60
        while not set(orders) <= set(releases.seen):
            if time.perf_counter() > deadline:
                missing = len(set(orders) - set(releases.seen))
                raise RuntimeError(f"{missing} releases never appeared")
            runtime.check()
            time.sleep(0.05)  # waiting for the backend to drain the last blocks
        stop.set()
        latencies = [(releases.seen[o] - blocks.seen[b]) * 1000 for o, b in orders.items()]
        indexed = [
            (mirror.seen[o] - blocks.seen[b]) * 1000 for o, b in orders.items() if o in mirror.seen
        ]
        if indexed:
            console.print(
                f"[dim]breakdown: block -> mirror p50 {percentile(indexed, 50):.0f} ms, "
                f"p99 {percentile(indexed, 99):.0f} ms; the rest is the agent sealing, "
                "storing and delivering, and the mirror indexing the delivery[/dim]"
            )
        first_block = min(blocks.seen[b] for b in orders.values())
        last_release = max(releases.seen[o] for o in orders)
        per_block = len(orders) / max(1, len(set(orders.values())))
        console.print(
            f"[dim]sent {total} in {sent_for:.1f} s; {len(set(orders.values()))} "
            f"blocks, {per_block:.0f} orders per block; checking every release "
            "through the API[/dim]"
        )
        _check_through_api(runtime, escrow, buyers, receipts)
        runtime.check()
    finally:
        stop.set()
        if runtime is not None:
            runtime.stop()
        node.stop()
    return {
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "orders_per_s": round(len(orders) / (last_release - first_block), 1),
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
    for receipt in receipts:
        buyer = by_address[receipt["from"]]
        if buyer.address not in clients:
            clients[buyer.address] = KamengClient(runtime.url)
            clients[buyer.address].sign_in(buyer)
        oid = _order_id(escrow, receipt)
        release = clients[buyer.address].release(oid)
        if release.order_id != oid or release.buyer != buyer.address:
            raise RuntimeError(f"the API served the wrong release for order {oid}")


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """Both measurements; the dict is the JSON line ``kameng bench latency --json`` prints.

    Args:
        console: Where progress and each measurement's figures go.
        quick: Measure few orders at a low rate for a few seconds instead of the full load.

    Returns:
        ``{"embedded": {...}, "anvil_1s_blocks": {...}}``, with the leaves named by `FIELDS`.
    """
    orders = QUICK_EMBEDDED_ORDERS if quick else EMBEDDED_ORDERS
    rate, seconds = (QUICK_RATE, QUICK_SECONDS) if quick else (RATE, SECONDS)
    result_embedded = embedded(console, orders=orders)
    console.print(f"embedded: {result_embedded}")
    result_anvil = anvil_1s_blocks(console, rate=rate, seconds=seconds)
    console.print(f"anvil, 1-s blocks: {result_anvil}")
    return {"embedded": result_embedded, "anvil_1s_blocks": result_anvil}
