"""Fast escrow workloads on anvil for the indexer's tests and benchmark.

Nothing here is needed to run the indexer. `AnvilDriver` sends transactions from impersonated
accounts (no signing in Python: anvil's ``anvil_autoImpersonateAccount``) in JSON-RPC batches,
with automine off, and mines blocks at chosen timestamps. `Workload` drives the whole escrow
lifecycle in rounds, so that every event type of the contract appears, and many per
transaction (batched deliver and settle), about 2.7 events per order:

    buy (a quarter in a reseller's shop) -> deliver (batched) -> confirm | dispute -> evidence
        -> rule | timeout fallback -> settle (batched) | refund -> withdraw, withdraw fees,
        bond in and out

Each listing is opened to resellers (分站) and sold in one reseller's shop, so the orders bought
there carry a reseller and a cut, and their endings credit the reseller a commission.

It tracks every order's stored struct from the events it sees, with the client's own
`order_from_paid_event` and `apply_event`, so later calls pass the right `Order`.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import requests
from eth_abi import encode as abi_encode
from eth_utils import (
    function_abi_to_4byte_selector,
    get_abi_input_types,
    keccak,
    to_checksum_address,
)

from contracts.artifacts import load
from contracts.client import apply_event, escrow_codec, order_from_paid_event
from contracts.encoding import ZERO_ADDRESS, Order, sku_id
from contracts.events import DecodedLog
from contracts.order_rules import is_final
from indexer.errors import IndexerError

if TYPE_CHECKING:
    from pathlib import Path

ROLE_ARBITER = keccak(text="ARBITER_ROLE")
REASON = b"code-already-redeemed".ljust(32, b"\0")


#: The Config's window bounds (min/max delivery, min/max dispute), as the contract takes them.
WINDOW_BOUNDS = (60, 30 * 86_400, 3600, 90 * 86_400)


def random_address() -> str:
    """A fresh random address (impersonated on anvil, so it needs no key)."""
    return to_checksum_address("0x" + os.urandom(20).hex())


class Calldata:
    """Encodes calls to one contract's functions against types computed once."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        """Precompute selectors and input types."""
        self.functions: dict[str, tuple[bytes, list[str]]] = {}
        self.constructor_types: list[str] = []
        for item in abi:
            entry = cast("Any", item)
            if item["type"] == "function":
                self.functions[item["name"]] = (
                    function_abi_to_4byte_selector(entry),
                    list(get_abi_input_types(entry)),
                )
            elif item["type"] == "constructor":
                self.constructor_types = list(get_abi_input_types(entry))

    def encode(self, fn: str, *args: Any) -> str:
        """``0x``-hex calldata of `fn(*args)`."""
        selector, types = self.functions[fn]
        return "0x" + (selector + abi_encode(types, list(args))).hex()

    def constructor(self, bytecode: str, *args: Any) -> str:
        """Deployment data: bytecode followed by the encoded constructor arguments."""
        code = bytecode[2:] if bytecode.startswith("0x") else bytecode
        return "0x" + code + abi_encode(self.constructor_types, list(args)).hex()


class AnvilDriver:
    """Batches of unsigned transactions to anvil from impersonated accounts; manual mining."""

    def __init__(self, url: str, *, automine: bool = False) -> None:
        """Connect, impersonate every account, and switch automine off (unless `automine`).

        Args:
            url: The anvil node's URL.
            automine: Keep mining a block per transaction (live runs with ``--block-time``
                pass True, and anvil keeps its own interval).
        """
        self.url = url
        self.session = requests.Session()
        self._ids = itertools.count(1)
        self.rpc("anvil_autoImpersonateAccount", [True])
        if not automine:
            self.rpc("evm_setAutomine", [False])
        self.rpc("evm_setBlockGasLimit", [hex(2_000_000_000)])
        self.codec = escrow_codec()
        self.funded: set[str] = set()
        self.nonces: dict[str, int] = {}

    def rpc(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call.

        Raises:
            IndexerError: the node answered with an error.
        """
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = self.session.post(self.url, json=body, timeout=120).json()
        if "error" in reply:
            raise IndexerError(f"{method} failed: {reply['error']}")
        return reply.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one batch request; results in order.

        Raises:
            IndexerError: any of them failed.
        """
        results: list[Any] = []
        for i in range(0, len(calls), 1000):
            chunk = calls[i : i + 1000]
            body = [
                {"jsonrpc": "2.0", "id": n, "method": m, "params": p}
                for n, (m, p) in enumerate(chunk)
            ]
            replies = self.session.post(self.url, json=body, timeout=300).json()
            replies.sort(key=lambda r: r["id"])
            for reply in replies:
                if "error" in reply:
                    raise IndexerError(f"batched call failed: {reply['error']}")
                results.append(reply.get("result"))
        return results

    def fund(self, *addresses: str) -> None:
        """Give accounts plenty of the native coin."""
        calls = [("anvil_setBalance", [a, hex(10**30)]) for a in addresses if a not in self.funded]
        if calls:
            self.batch(calls)
            self.funded.update(addresses)

    def send(self, txs: list[dict[str, Any]]) -> list[str]:
        """Send transactions (dicts with from, to, data, value, gas) without waiting.

        Nonces are assigned here: anvil may handle the requests of a batch concurrently.
        """
        senders = sorted({tx["from"] for tx in txs} - set(self.nonces))
        if senders:
            counts = self.batch([("eth_getTransactionCount", [a, "pending"]) for a in senders])
            self.nonces.update({a: int(c, 16) for a, c in zip(senders, counts, strict=True)})
        calls = []
        for tx in txs:
            nonce = self.nonces[tx["from"]]
            self.nonces[tx["from"]] = nonce + 1
            req = {
                "from": tx["from"],
                "data": tx["data"],
                "gas": hex(tx.get("gas", 500_000)),
                "nonce": hex(nonce),
            }
            if tx.get("to"):
                req["to"] = tx["to"]
            if tx.get("value"):
                req["value"] = hex(tx["value"])
            calls.append(("eth_sendTransaction", [req]))
        return [str(h) for h in self.batch(calls)]

    def mine(self, timestamp: int | None = None) -> int:
        """Mine one block (at `timestamp` if given) with every pending transaction.

        Returns:
            The new block's number.

        Raises:
            IndexerError: transactions were left pending (the block was full).
        """
        if timestamp is not None:
            self.rpc("evm_setNextBlockTimestamp", [timestamp])
        self.rpc("anvil_mine", ["0x1"])
        pending = int(self.rpc("txpool_status", [])["pending"], 16)
        if pending:
            raise IndexerError(f"{pending} transactions left pending after mining")
        return int(self.rpc("eth_blockNumber", []), 16)

    def block_logs(self, number: int, address: str) -> list[DecodedLog]:
        """The escrow's decoded logs in one block."""
        raw = self.rpc(
            "eth_getLogs", [{"fromBlock": hex(number), "toBlock": hex(number), "address": address}]
        )
        out = []
        for entry in raw:
            decoded = self.codec.decode_log(entry)
            if decoded is not None:
                out.append(decoded)
        return out

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def head(self) -> int:
        """The latest block's number."""
        return int(self.rpc("eth_blockNumber", []), 16)


@dataclass
class Workload:
    """An escrow on anvil and a lifecycle driver that produces every event type.

    Attributes:
        driver: The anvil driver.
        escrow: The escrow's address (after `deploy`).
        orders: Open orders as stored, by id.
        events: Escrow events seen, by name.
    """

    driver: AnvilDriver
    seed: int = 1
    buyers: int = 8
    delivery_window: int = 600
    dispute_window: int = 3600
    arbitration_window: int = 3600
    unit_price: int = 10**15
    #: What the supplier receives a code from a reseller's sale, and the reseller's shop price.
    reseller_price: int = 9 * 10**14
    shop_price: int = 11 * 10**14
    escrow: str = ""
    orders: dict[int, Order] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    listings: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.calldata = Calldata(load("CodeEscrow").abi)
        self.admin = random_address()
        self.arbiter = random_address()
        self.supplier = random_address()
        self.delivery_key = random_address()
        self.reseller = random_address()
        self.fee_recipient = random_address()
        self.buyer_list = [random_address() for _ in range(self.buyers)]
        self.sku = sku_id("steam-wallet-50")
        self.driver.fund(
            self.admin,
            self.arbiter,
            self.supplier,
            self.delivery_key,
            self.reseller,
            *self.buyer_list,
        )
        self.now = self.driver.timestamp() + 10
        self.stock: dict[int, int] = {}
        self.stock_committed: dict[int, int] = {}  # codes committed so far, per listing

    # ------------------------------------------------------------ plumbing

    def tx(
        self, sender: str, fn: str, *args: Any, value: int = 0, gas: int = 400_000
    ) -> dict[str, Any]:
        """A transaction calling the escrow."""
        return {
            "from": sender,
            "to": self.escrow,
            "data": self.calldata.encode(fn, *args),
            "value": value,
            "gas": gas,
        }

    def block(self, txs: list[dict[str, Any]], advance: int = 1) -> list[DecodedLog]:
        """Send `txs`, mine them in one block `advance` seconds later, track their events."""
        if txs:
            self.driver.send(txs)
        self.now += advance
        return self.track(self.driver.mine(self.now))

    def track(self, number: int) -> list[DecodedLog]:
        """Count and follow the escrow events of block `number`."""
        logs = self.driver.block_logs(number, self.escrow)
        for ev in logs:
            self.events[ev.name] = self.events.get(ev.name, 0) + 1
            if ev.name == "OrderPaid":
                self.orders[int(ev.args["orderId"])] = order_from_paid_event(ev.args)
            elif "orderId" in ev.args and int(ev.args["orderId"]) in self.orders:
                oid = int(ev.args["orderId"])
                self.orders[oid] = apply_event(self.orders[oid], ev.name, ev.args, self.now)
                if is_final(self.orders[oid].state):
                    del self.orders[oid]
        return logs

    def expect(self, logs: list[DecodedLog], name: str, count: int) -> None:
        """Check that a block holds `count` events called `name`.

        Raises:
            IndexerError: it holds another number (a transaction of the workload reverted).
        """
        got = sum(1 for ev in logs if ev.name == name)
        if got != count:
            raise IndexerError(f"workload expected {count} {name} events, block has {got}")

    def total_events(self) -> int:
        """Escrow events emitted so far."""
        return sum(self.events.values())

    # ------------------------------------------------------------ phases

    def deploy(self) -> str:
        """Deploy the escrow and set up roles, config, a token, a licensed supplier, a listing."""
        art = load("CodeEscrow")
        config = (self.fee_recipient, 200, 1000, self.arbitration_window, *WINDOW_BOUNDS)
        data = self.calldata.constructor(art.bytecode, self.admin, config)
        # The escrow's constructor also deploys its BadCodeVerifier: about 7.5M gas in all.
        (tx_hash,) = self.driver.send([{"from": self.admin, "data": data, "gas": 15_000_000}])
        self.now += 1
        number = self.driver.mine(self.now)
        receipt = self.driver.rpc("eth_getTransactionReceipt", [tx_hash])
        if int(receipt["status"], 16) != 1:
            raise RuntimeError(f"deploying CodeEscrow failed (gas used {receipt['gasUsed']})")
        self.escrow = to_checksum_address(receipt["contractAddress"])
        self.track(number)
        self.block(
            [
                self.tx(self.admin, "grantRole", ROLE_ARBITER, self.arbiter),
                self.tx(self.admin, "setTokenAllowed", random_address(), True),
                self.tx(self.admin, "authorize", self.supplier, self.sku, keccak(text="licence")),
                self.tx(self.supplier, "setDeliveryKey", self.delivery_key, True),
                self.tx(self.delivery_key, "acceptDeliveryKey", self.supplier),
                self.tx(self.supplier, "depositBond", ZERO_ADDRESS, 10**23, value=10**23),
            ]
        )
        self.open_listing()
        return self.escrow

    def open_listing(self) -> int:
        """Create a listing (ListingCreated, MetaEvidence), open it to resellers
        (ResellerPriceSet) and put it in the reseller's shop (ShopPriceSet)."""
        logs = self.block(
            [
                self.tx(
                    self.supplier,
                    "createListing",
                    self.sku,
                    ZERO_ADDRESS,
                    self.unit_price,
                    self.delivery_window,
                    self.dispute_window,
                    1000,
                    f"ipfs://listing/{len(self.listings)}",
                )
            ]
        )
        lid = int(next(ev for ev in logs if ev.name == "ListingCreated").args["listingId"])
        # Two blocks: the shop's price is refused until the reseller price is set.
        logs = self.block([self.tx(self.supplier, "setResellerPrice", lid, self.reseller_price)])
        self.expect(logs, "ResellerPriceSet", 1)
        logs = self.block([self.tx(self.reseller, "setShopPrice", lid, self.shop_price)])
        self.expect(logs, "ShopPriceSet", 1)
        self.listings.append(lid)
        self.stock[lid] = 0
        return lid

    def restock(self, listing_id: int, count: int) -> None:
        """Commit a batch of `count` codes (BatchCommitted); the root is random here."""
        first = self.stock_committed.get(listing_id, 0)
        self.block(
            [self.tx(self.supplier, "commitBatch", listing_id, os.urandom(32), count, first)]
        )
        self.stock_committed[listing_id] = first + count
        self.stock[listing_id] += count

    def buy_block(self, n: int, listing_id: int) -> list[int]:
        """`n` purchases in one block; a quarter in the reseller's shop, a third of several
        codes."""
        if self.stock[listing_id] < n * 3:
            self.restock(listing_id, max(n * 3, 1000))
        txs = []
        for i in range(n):
            quantity = 1 + (i % 3 == 0) * 2
            in_shop = i % 4 == 0
            reseller = self.reseller if in_shop else ZERO_ADDRESS
            price = self.shop_price if in_shop else self.unit_price
            buyer = self.buyer_list[self.rng.randrange(len(self.buyer_list))]
            txs.append(
                self.tx(
                    buyer,
                    "buy",
                    listing_id,
                    quantity,
                    price,
                    reseller,
                    os.urandom(32),
                    value=price * quantity,
                    gas=300_000,
                )
            )
            self.stock[listing_id] -= quantity
        logs = self.block(txs)
        self.expect(logs, "OrderPaid", n)
        return [int(ev.args["orderId"]) for ev in logs if ev.name == "OrderPaid"]

    def deliver(self, oids: list[int], batch: int) -> None:
        """Deliver orders in batched transactions (one block)."""
        txs = []
        for i in range(0, len(oids), batch):
            chunk = oids[i : i + batch]
            txs.append(
                self.tx(
                    self.delivery_key,
                    "deliver",
                    chunk,
                    [self.orders[o].as_tuple() for o in chunk],
                    [keccak(o.to_bytes(32, "big") + os.urandom(4)) for o in chunk],
                    gas=80_000 + 40_000 * len(chunk),
                )
            )
        self.expect(self.block(txs), "OrderDelivered", len(oids))

    def settle(self, oids: list[int], batch: int) -> None:
        """Settle delivered orders past their dispute windows, batched (one block)."""
        txs = []
        for i in range(0, len(oids), batch):
            chunk = oids[i : i + batch]
            txs.append(
                self.tx(
                    self.reseller,
                    "settle",
                    chunk,
                    [self.orders[o].as_tuple() for o in chunk],
                    gas=80_000 + 50_000 * len(chunk),
                )
            )
        self.expect(self.block(txs), "OrderSettled", len(oids))

    def round(self, orders: int, *, per_block: int = 500, batch: int = 100) -> None:
        """One full lifecycle round over `orders` new orders; every event type appears."""
        listing = self.listings[-1]
        if self.rng.random() < 0.5:
            self.block(
                [
                    self.tx(self.supplier, "updateListing", listing, self.unit_price, True),
                    self.tx(self.reseller, "setShopPrice", listing, self.shop_price),
                ]
            )
        paid: list[int] = []
        for i in range(0, orders, per_block):
            paid += self.buy_block(min(per_block, orders - i), listing)
        self.rng.shuffle(paid)
        undelivered = paid[: max(1, len(paid) // 20)]
        delivered = paid[len(undelivered) :]
        for i in range(0, len(delivered), per_block * 2):
            self.deliver(delivered[i : i + per_block * 2], batch)
        confirmed = delivered[: len(delivered) // 10]
        disputed = delivered[len(confirmed) : len(confirmed) + max(2, len(delivered) // 40)]
        to_settle = delivered[len(confirmed) + len(disputed) :]
        buyer_txs = [
            self.tx(self.orders[o].buyer, "confirm", o, self.orders[o].as_tuple())
            for o in confirmed
        ]
        buyer_txs += [
            self.tx(
                self.orders[o].buyer,
                "dispute",
                o,
                self.orders[o].as_tuple(),
                f"ipfs://evidence/{o}",
                keccak(o.to_bytes(32, "big")),
            )
            for o in disputed
        ]
        logs = self.block(buyer_txs)
        self.expect(logs, "OrderConfirmed", len(confirmed))
        self.expect(logs, "DisputeOpened", len(disputed))
        self.block(
            [
                self.tx(
                    self.supplier,
                    "addEvidence",
                    o,
                    self.orders[o].as_tuple(),
                    f"ipfs://supplier/{o}",
                    keccak(b"s" + o.to_bytes(32, "big")),
                )
                for o in disputed
            ]
        )
        ruled = disputed[: len(disputed) // 2]
        logs = self.block(
            [
                self.tx(
                    self.arbiter,
                    "rule",
                    o,
                    self.orders[o].as_tuple(),
                    self.rng.choice([0, 5000, 10_000]),
                    self.rng.choice([0, 2500]),
                    keccak(b"bundle" + o.to_bytes(32, "big")),
                    REASON,
                )
                for o in ruled
            ]
        )
        self.expect(logs, "DisputeRuled", len(ruled))
        # Past every delivery deadline and dispute window of this round.
        self.now += self.dispute_window + 60
        for i in range(0, len(to_settle), per_block * 2):
            self.settle(to_settle[i : i + per_block * 2], batch)
        logs = self.block(
            [
                self.tx(self.orders[o].buyer, "refund", o, self.orders[o].as_tuple())
                for o in undelivered
            ]
        )
        self.expect(logs, "OrderRefunded", len(undelivered))
        # Past the arbitration deadline: the timeout fallback for the rest.
        self.now += self.arbitration_window + 60
        timed_out = disputed[len(ruled) :]
        logs = self.block(
            [
                self.tx(self.reseller, "resolveTimedOut", o, self.orders[o].as_tuple())
                for o in timed_out
            ]
        )
        self.expect(logs, "DisputeRuled", len(timed_out))
        withdrawers = sorted({self.supplier, self.reseller, *self.rng.sample(self.buyer_list, 3)})
        logs = self.block(
            [self.tx(a, "withdraw", ZERO_ADDRESS, a) for a in withdrawers]
            + [
                self.tx(self.admin, "withdrawFees", ZERO_ADDRESS, self.fee_recipient),
                self.tx(self.supplier, "withdrawBond", ZERO_ADDRESS, 10**18, self.supplier),
                self.tx(self.supplier, "depositBond", ZERO_ADDRESS, 10**18, value=10**18),
            ]
        )
        self.expect(logs, "FeesWithdrawn", 1)

    def config_change(self) -> None:
        """ConfigUpdated, SkuAuthorized and DeliveryKeySet once more."""
        config = (self.fee_recipient, 150, 1000, self.arbitration_window, *WINDOW_BOUNDS)
        self.block(
            [
                self.tx(self.admin, "setConfig", config),
                self.tx(
                    self.admin, "authorize", self.supplier, sku_id("office-365"), keccak(b"a2")
                ),
                self.tx(self.supplier, "setDeliveryKey", random_address(), True),
            ]
        )


# ---------------------------------------------------------------- comparing mirrors


def dump_mirror(engine: Any, skip: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every mirror table, normalised and sorted, for row-by-row comparisons.

    Args:
        engine: A SQLAlchemy engine (or URL) of a migrated mirror.
        skip: Tables to leave out.

    Returns:
        Rows by table name, as tuples in column order; ints, strs, bools, hex for bytes.
    """
    from sqlalchemy import select

    from indexer.db import make_engine
    from indexer.state import TABLES

    own = isinstance(engine, str)
    eng = make_engine(engine) if own else engine
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with eng.connect() as conn:
            for name, table in sorted(TABLES.items()):
                if name in skip:
                    continue
                rows = conn.execute(select(table)).all()
                out[name] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
    finally:
        if own:
            eng.dispose()
    return out


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    return value


def diff_mirrors(
    a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]], limit: int = 5
) -> list[str]:
    """Human-readable differences between two `dump_mirror` results (empty when equal)."""
    out = []
    for name in sorted(set(a) | set(b)):
        ra, rb = a.get(name, []), b.get(name, [])
        if ra == rb:
            continue
        sa, sb = set(ra), set(rb)
        only_a = sorted(sa - sb, key=repr)[:limit]
        only_b = sorted(sb - sa, key=repr)[:limit]
        out.append(f"{name}: {len(ra)} vs {len(rb)} rows; only left {only_a}; only right {only_b}")
    return out


def small_workload(
    url: str,
    *,
    rounds: int = 2,
    orders: int = 60,
    per_block: int = 15,
    batch: int = 10,
    seed: int = 1,
) -> Workload:
    """Deploy an escrow on the anvil at `url` and run a few lifecycle rounds on it.

    Args:
        url: The anvil node.
        rounds: Lifecycle rounds.
        orders: New orders per round.
        per_block: Transactions of one kind per block.
        batch: Orders per deliver or settle transaction.
        seed: Seeds the workload's choices.

    Returns:
        The workload, with its escrow deployed.
    """
    work = Workload(AnvilDriver(url), seed=seed)
    work.deploy()
    work.config_change()
    for _ in range(rounds):
        work.round(orders, per_block=per_block, batch=batch)
    return work


def reorg(driver: AnvilDriver, depth: int, rng: random.Random, drop: float = 0.3) -> int:
    """Replace the last `depth` blocks: their transactions re-ordered, some dropped, moved.

    Returns:
        How many transactions were dropped.
    """
    head = driver.head()
    txs: list[dict[str, Any]] = []
    for number in range(head - depth + 1, head + 1):
        block = driver.rpc("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            req = {"from": tx["from"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
            if tx.get("to"):
                req["to"] = tx["to"]
            txs.append(req)
    rng.shuffle(txs)
    kept = [t for i, t in enumerate(txs) if i == 0 or rng.random() > drop]
    driver.rpc("anvil_reorg", [depth, [[t, rng.randrange(depth)] for t in kept]])
    driver.nonces.clear()
    return len(txs) - len(kept)


def wait_until(
    condition: Any, timeout: float, what: str = "condition", interval: float = 0.01
) -> float:
    """Poll `condition()` until it is true; return the seconds it took.

    Raises:
        TimeoutError: it stayed false for `timeout` seconds.
    """
    import time

    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)  # polling a condition, not standing in for synchronisation


# ---------------------------------------------------------------- subprocesses

#: `kameng` without relying on the console script being on PATH.
KAMENG = [
    sys.executable,
    "-c",
    "import sys; from backend.cli import main; sys.argv[0] = 'kameng'; main()",
]


class IndexProcess:
    """`kameng index --log-json` in a subprocess, its JSON lines read on a thread."""

    def __init__(self, args: list[str], log: Path) -> None:
        """Start ``kameng index --log-json ARGS``, its stderr appended to `log`."""
        self.stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [*KAMENG, "index", "--log-json", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        """Queue each JSON line of stdout; None at the end."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
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
