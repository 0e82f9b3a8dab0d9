"""Evidence calls on a long chain: answered from the mirror, against the old full-range scans.

Issue 11: building a bundle scanned the escrow's logs from block 0, which took tens of seconds
on a chain of a few hundred blocks. The evidence routes now ask the node only for the blocks the
indexer's mirror names (`backend.evidence.service.MirrorIndex`) plus the blocks past its
checkpoint. Done when the evidence calls answer in under a second on a chain of 10,000 blocks.

Two runs in this process, each of the whole backend (API under uvicorn, indexer, delivery agent,
SQLite) around a fresh chain: **embedded** (eth-tester, as ``Runtime.embedded`` makes it) and
**anvil** (as `bench.latency` makes it). Each:

1. An **early** order (2 codes) is paid, delivered by the agent and disputed by its buyer, so
   its bundle holds several events (payment, delivery, ``DisputeOpened`` and ERC-1497's
   ``Dispute``).
2. The chain grows with empty blocks (eth-tester's ``mine_blocks`` under the provider's lock,
   or ``anvil_mine``; in chunks while the indexer follows) to ``Size.blocks`` blocks; a **late**
   order is paid, delivered and disputed ``LATE_MARGIN`` blocks before the end. The indexer
   catches up before anything is measured.
3. Through the real HTTP API, signed in with SIWE sessions, ``Size.reps`` times each, per order:
   ``POST /evidence/orders/{id}/buyer-secret`` with the buyer's wallet-derived order secret
   (200); ``GET /evidence/orders/{id}`` **cold** (an empty block is mined and indexed before each
   call, so the per-head bundle cache misses) and **cached** (repeated in the same block);
   ``POST /evidence/verify`` of the bundle (200, every claim passes). Once per node, as often:
   ``POST /evidence/orders/{unknown}/supplier-codes`` by the supplier (404).
4. In this process, per order, the same bundle built two ways at the same head: with the
   mirror (`mirror_view` + `bundle_for`, no cache), and the **baseline**: a `ChainView` with no
   index and plain `Hints` (block 0), i.e. the old full-range scans (``Size.baseline_reps``
   times). Both must give the same
   ``selfHash``; ``speedup`` is baseline median / mirror median.

The API's rate limiter (`backend.api.ratelimit`, about 10 evidence calls at once per wallet and
20 per address) would throttle a benchmark: this run replaces the app's ``ctx.limiter`` with one
whose buckets never run dry, and measures the calls, not the limits.

Sizes (`FULL`, `QUICK`): both nodes grow to 10,000 blocks, the issue's chain (quick: 200 on
the embedded chain, 1,500 on anvil). The embedded chain finds a transaction's receipt through
py-evm's hash index (`contracts.chain._install_indexed_tx_lookup`); before that, eth-tester
walked back from the head one block at a time for every receipt, and a bundle of an early order
on 10,000 blocks took minutes.

Every figure is in ms; ``*_median_ms`` and ``*_max_ms`` are over the repetitions.
``*_under_1s`` is true when every repetition of that API call answered in under a second (the
issue's target, meaningful at full size only). The last line of ``kameng bench evidence --json``
is the result dict, with the leaves named by `FIELDS`. ``--quick`` runs the same steps on
shorter chains with fewer repetitions, for CI: its figures say the run works.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import keccak
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backend.api.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter
from backend.client import ApiError, KamengClient
from backend.config import Settings
from backend.evidence.bundle import Built, Hints, build_bundle
from backend.evidence.chainview import ChainView
from backend.evidence.service import bundle_for, mirror_view, stored_release
from backend.evidence.store import AdditionsStore
from backend.keys import next_order_key, public_key_bytes
from backend.rpc_proxy import serialize_provider
from backend.runtime import Runtime, demo_codes, deploy_dev_world
from contracts.chain import AnvilNode
from contracts.encoding import Order, OrderState, order_id

if TYPE_CHECKING:
    import httpx
    from eth_account.signers.local import LocalAccount
    from nacl.public import PrivateKey
    from rich.console import Console


@dataclass(frozen=True)
class Size:
    """How long a chain to grow and how many times to repeat each measurement."""

    blocks: int
    reps: int
    baseline_reps: int


#: Full size by node: the issue's 10,000 blocks on both.
FULL = {"embedded": Size(10_000, 3, 1), "anvil": Size(10_000, 5, 3)}
QUICK = {"embedded": Size(200, 2, 1), "anvil": Size(1_500, 3, 2)}
NODES = ("embedded", "anvil")
#: The late order is paid this many blocks before the end of the grown chain.
LATE_MARGIN = 30
#: Empty blocks mined per step, by node: per hold of eth-tester's lock (the indexer follows in
#: between), or per ``anvil_mine`` (which slows as the chain grows: 100 blocks near the 10,000th
#: took over the 10-s RPC timeout on a busy machine).
CHUNK = {"embedded": 100, "anvil": 20}
#: Seconds the indexer may take to catch up, and a delivery or an API answer to come.
WAIT_S = 600.0
ORDERS = ("early", "late")
#: The per-order figures (the API calls, the in-process builds, the checks).
ORDER_FIELDS = (
    "paid_block",
    "events",
    "get_cold_median_ms",
    "get_cold_max_ms",
    "get_cached_median_ms",
    "get_cached_max_ms",
    "buyer_secret_median_ms",
    "buyer_secret_max_ms",
    "verify_median_ms",
    "verify_max_ms",
    "build_mirror_median_ms",
    "build_mirror_max_ms",
    "build_baseline_median_ms",
    "build_baseline_max_ms",
    "speedup",
    "get_cold_under_1s",
    "get_cached_under_1s",
    "buyer_secret_under_1s",
    "verify_under_1s",
)
NODE_FIELDS = (
    "blocks",
    *(f"{o}.{f}" for o in ORDERS for f in ORDER_FIELDS),
    "unknown_codes_median_ms",
    "unknown_codes_max_ms",
    "unknown_codes_under_1s",
)
FIELDS = tuple(f"{node}.{f}" for node in NODES for f in NODE_FIELDS)
"""Dotted paths of the result's leaves: per node (``embedded``, ``anvil``) the chain's length
``blocks``; per order (``early``, ``late``) its payment block, the number of events in its
bundle, each call's median and max in ms, the speedup and whether each API call stayed under a
second; then the unknown order's supplier-codes call."""

#: A limiter that never refuses: the benchmark measures the calls, not the rate limits.
_UNLIMITED = Limit(per_minute=1e9, burst=1_000_000_000)


def unlimited_limiter() -> RateLimiter:
    """A rate limiter with every limit of `DEFAULT_LIMITS`, none of which ever runs dry."""
    return RateLimiter(dict.fromkeys(DEFAULT_LIMITS, _UNLIMITED))


@dataclass
class Placed:
    """A paid, delivered and disputed order."""

    order_id: int
    buyer: LocalAccount
    key: PrivateKey
    paid_block: int


@dataclass
class Stage:
    """The running backend and what the measurements need from it."""

    runtime: Runtime
    url: str
    clients: dict[str, KamengClient]

    def client(self, account: LocalAccount) -> KamengClient:
        """An API client signed in (SIWE session) as `account`, made once per account."""
        if account.address not in self.clients:
            client = KamengClient(self.url, timeout=WAIT_S)
            client.sign_in(account)
            self.clients[account.address] = client
        return self.clients[account.address]

    def head(self) -> int:
        """The chain's newest block number."""
        return int(self.runtime.chain.w3.eth.block_number)


def auth(client: KamengClient) -> dict[str, str]:
    """The headers of a request in `client`'s SIWE session."""
    return {"Authorization": f"Bearer {client.token}"}


def stats(samples: list[float]) -> tuple[float, float]:
    """The median and the max of `samples`, rounded to 0.1."""
    return round(statistics.median(samples), 1), round(max(samples), 1)


def _poll(what: str, check: Callable[[], bool], runtime: Runtime, timeout: float = WAIT_S) -> None:
    """Poll `check` until true; fail after `timeout` or when a worker died.

    Raises:
        RuntimeError: it never became true.
    """
    deadline = time.monotonic() + timeout
    while not check():
        runtime.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling the running backend, with a deadline


def _indexed(stage: Stage, head: int) -> bool:
    indexed = stage.clients["anonymous"].health().indexed_block
    return indexed is not None and indexed >= head


def wait_indexed(stage: Stage) -> None:
    """Wait until the mirror has reached the chain's current head."""
    head = stage.head()
    _poll(f"the indexer to reach block {head}", lambda: _indexed(stage, head), stage.runtime)


@contextmanager
def _chain_lock(runtime: Runtime) -> Iterator[None]:
    """On the embedded chain, hold the provider's lock (eth-tester is not thread-safe and
    mining bypasses the provider, so it must take the lock the backend's requests take)."""
    if runtime.chain.kind != "embedded":
        yield
        return
    with serialize_provider(runtime.chain):
        yield


def mine(runtime: Runtime, blocks: int) -> None:
    """Mine `blocks` empty blocks under the provider's lock."""
    with _chain_lock(runtime):
        runtime.chain.mine(blocks)


def grow(stage: Stage, console: Console, to_block: int, what: str) -> None:
    """Mine empty blocks until the head is `to_block`, in chunks, showing progress."""
    start = stage.head()
    if to_block <= start:
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=to_block - start)
        chunk = CHUNK["embedded" if stage.runtime.chain.kind == "embedded" else "anvil"]
        while (head := stage.head()) < to_block:
            step = min(chunk, to_block - head)
            mine(stage.runtime, step)
            progress.advance(task, step)
            stage.runtime.check()
    console.print(f"[dim]{what}: blocks {start} -> {to_block}[/dim]")


def _current(stage: Stage, oid: int, buyer: LocalAccount, state: OrderState) -> Order | None:
    """The order as the mirror has it, once it is in `state` and matches the chain."""
    try:
        order = Order.from_record(stage.client(buyer).order(oid, buyer))
    except ApiError as exc:
        if exc.status == 404:  # paid, not indexed yet
            return None
        raise
    if order.state != state or not stage.runtime.escrow.order_matches(oid, order):
        return None
    return order


def place_order(stage: Stage, buyer: LocalAccount, quantity: int) -> Placed:
    """Pay for an order with a wallet-derived key, wait for the agent's delivery to be indexed,
    then dispute it as the buyer and wait for the dispute to be indexed."""
    runtime = stage.runtime
    assert runtime.dev is not None
    escrow = runtime.escrow
    key, _ = next_order_key(escrow, buyer)
    escrow.tx.reset_nonce(buyer.address)
    oid, _, paid = escrow.buy(
        buyer,
        runtime.dev.listing_id,
        quantity,
        max_unit_price=10**16,
        buyer_pubkey=public_key_bytes(key),
    )
    found: list[Order] = []

    def delivered() -> bool:
        order = _current(stage, oid, buyer, OrderState.DELIVERED)
        if order is not None:
            found.append(order)
        return order is not None

    _poll(f"order {oid} delivered and indexed", delivered, runtime)
    escrow.tx.reset_nonce(buyer.address)
    escrow.dispute(buyer, oid, found[0], "kameng:statement", keccak(text=f"bench {oid}"))
    wait_indexed(stage)
    return Placed(oid, buyer, key, paid.block_number)


def timed(
    what: str, call: Callable[[], httpx.Response], expect: int, reps: int
) -> tuple[list[float], httpx.Response]:
    """Time `reps` calls of `call` in ms; each must answer `expect`.

    Raises:
        RuntimeError: a call answered another status.
    """
    samples: list[float] = []
    response: httpx.Response | None = None
    for _ in range(reps):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != expect:
            raise RuntimeError(
                f"{what} answered {response.status_code}, not {expect}: {response.text[:500]}"
            )
    assert response is not None
    return samples, response


def _ms(call: Callable[[], Built]) -> tuple[float, Built]:
    start = time.perf_counter()
    built = call()
    return (time.perf_counter() - start) * 1000, built


def builds(stage: Stage, oid: int, reps: int, baseline_reps: int) -> dict[str, Any]:
    """Build the order's bundle in this process with the mirror and with the old full-range
    scans (a `ChainView` without an index, `Hints` at block 0), at the same head.

    Raises:
        RuntimeError: the two bundles differ (the mirror left a log out, or added one).
    """
    runtime = stage.runtime
    store = AdditionsStore(runtime.settings.master_key_bytes)
    mirror_ms: list[float] = []
    baseline_ms: list[float] = []
    with runtime.sessions() as session:
        for _ in range(reps):
            took, built = _ms(
                lambda: bundle_for(
                    session,
                    mirror_view(session, runtime.chain, runtime.escrow.address),
                    oid,
                    store=store,
                )
            )
            mirror_ms.append(took)
        secret = store.buyer_secret(session, oid)
        codes = store.supplier_codes(session, oid)
        release = stored_release(session, oid)
        for _ in range(baseline_reps):
            view = ChainView(runtime.chain, runtime.escrow.address)

            def old(view: ChainView = view) -> Built:
                return build_bundle(
                    view,
                    oid,
                    release=release,
                    buyer_secret=secret,
                    supplier_codes=codes,
                    hints=Hints(),
                    as_of=view.head(),
                )

            took, plain = _ms(old)
            baseline_ms.append(took)
            if plain.self_hash != built.self_hash:
                raise RuntimeError(
                    f"order {oid}: the bundle built from the mirror ({built.self_hash}) differs "
                    f"from the one built by scanning ({plain.self_hash})"
                )
    mirror_median, mirror_max = stats(mirror_ms)
    base_median, base_max = stats(baseline_ms)
    return {
        "events": len(built.bundle.events),
        "build_mirror_median_ms": mirror_median,
        "build_mirror_max_ms": mirror_max,
        "build_baseline_median_ms": base_median,
        "build_baseline_max_ms": base_max,
        "speedup": round(statistics.median(baseline_ms) / statistics.median(mirror_ms), 1),
    }


def measure_order(
    stage: Stage, console: Console, name: str, placed: Placed, reps: int, baseline_reps: int
) -> dict[str, Any]:
    """Every evidence call about one order through the API, then the in-process builds."""
    oid = placed.order_id
    client = stage.client(placed.buyer)
    path = f"/evidence/orders/{oid}"
    secret = {"order_secret": "0x" + bytes(placed.key).hex()}
    secret_ms, _ = timed(
        "buyer-secret",
        lambda: client.http.post(path + "/buyer-secret", json=secret, headers=auth(client)),
        200,
        reps,
    )
    cold_ms: list[float] = []
    for _ in range(reps):
        mine(stage.runtime, 1)  # a new head: the per-block bundle cache misses
        wait_indexed(stage)
        took, cold = timed(
            "GET bundle", lambda: client.http.get(path, headers=auth(client)), 200, 1
        )
        cold_ms += took
    cached_ms, cached = timed(
        "GET bundle (cached)", lambda: client.http.get(path, headers=auth(client)), 200, reps
    )
    if cached.json()["self_hash"] != cold.json()["self_hash"]:
        raise RuntimeError(f"order {oid}: the cached bundle differs from the one just built")
    document = {"document": cold.json()["document"]}
    anonymous = stage.clients["anonymous"]
    verify_ms, checked = timed(
        "verify", lambda: anonymous.http.post("/evidence/verify", json=document), 200, reps
    )
    if not checked.json()["ok"]:
        raise RuntimeError(f"order {oid}: the bundle does not verify: {checked.text[:2000]}")
    console.print(f"[dim]{name}: API measured; building in process (baseline scans)[/dim]")
    built = builds(stage, oid, reps, baseline_reps)
    out: dict[str, Any] = {"paid_block": placed.paid_block, "events": built.pop("events")}
    for call, samples in (
        ("get_cold", cold_ms),
        ("get_cached", cached_ms),
        ("buyer_secret", secret_ms),
        ("verify", verify_ms),
    ):
        out[f"{call}_median_ms"], out[f"{call}_max_ms"] = stats(samples)
    out |= built
    for call in ("get_cold", "get_cached", "buyer_secret", "verify"):
        out[f"{call}_under_1s"] = out[f"{call}_max_ms"] < 1000
    return {f: out[f] for f in ORDER_FIELDS}


def measure_unknown(stage: Stage, reps: int) -> dict[str, Any]:
    """``POST /evidence/orders/{unknown}/supplier-codes`` by the supplier: 404, `reps` times."""
    dev = stage.runtime.dev
    assert dev is not None
    client = stage.client(dev.supplier)
    unknown = order_id(dev.listing_id, 4_000_000_000)
    samples, _ = timed(
        "supplier-codes of an unknown order",
        lambda: client.http.post(
            f"/evidence/orders/{unknown}/supplier-codes",
            json={"from_vault": True},
            headers=auth(client),
        ),
        404,
        reps,
    )
    median, worst = stats(samples)
    return {
        "unknown_codes_median_ms": median,
        "unknown_codes_max_ms": worst,
        "unknown_codes_under_1s": worst < 1000,
    }


@contextmanager
def backend(node: str) -> Iterator[Runtime]:
    """The whole backend (API, indexer, delivery agent, SQLite) on a fresh chain of `node`
    (``embedded`` or ``anvil``) with a development world; stopped afterwards."""
    settings = Settings(environment="development", order_source="auto")
    anvil: AnvilNode | None = None
    if node == "embedded":
        runtime = Runtime.embedded(settings, buyers=2)
    else:
        anvil = AnvilNode()
        chain = anvil.start()
        escrow, dev = deploy_dev_world(chain, buyers=2)
        runtime = Runtime.local(
            settings,
            chain=chain,
            escrow=escrow,
            delivery_account=dev.delivery,
            suppliers=[dev.supplier],
        )
        runtime.dev = dev
    try:
        yield runtime
    finally:
        runtime.stop()
        if anvil is not None:
            anvil.stop()


def measure_node(console: Console, node: str, size: Size) -> dict[str, Any]:
    """Grow a chain of `node` to ``size.blocks`` blocks around an early and a late order and
    measure every evidence call; the result has the leaves named by `NODE_FIELDS`."""
    with backend(node) as runtime:
        runtime.start()
        assert runtime.dev is not None and runtime.url is not None and runtime.server is not None
        app: Any = runtime.server.config.app
        app.state.ctx.limiter = unlimited_limiter()
        stage = Stage(runtime, runtime.url, {"anonymous": KamengClient(runtime.url)})
        try:
            dev = runtime.dev
            stage.client(dev.supplier).upload_codes(dev.listing_id, b"\n".join(demo_codes(10)))
            wait_indexed(stage)
            early = place_order(stage, dev.buyers[0], 2)
            console.print(
                f"[dim]{node}: early order {early.order_id} paid in block {early.paid_block}[/dim]"
            )
            grow(stage, console, size.blocks - LATE_MARGIN, f"{node}: growing the chain")
            late = place_order(stage, dev.buyers[1], 2)
            console.print(
                f"[dim]{node}: late order {late.order_id} paid in block {late.paid_block}[/dim]"
            )
            grow(stage, console, size.blocks, f"{node}: growing to the end")
            wait_indexed(stage)
            result: dict[str, Any] = {"blocks": stage.head()}
            for name, placed in (("early", early), ("late", late)):
                result[name] = measure_order(
                    stage, console, f"{node}, {name}", placed, size.reps, size.baseline_reps
                )
                console.print(f"{node}, {name}: {result[name]}")
            result |= measure_unknown(stage, size.reps)
            runtime.check()
        finally:
            for client in stage.clients.values():
                client.close()
    return result


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """Measure the evidence calls on each node; the dict is the JSON line
    ``kameng bench evidence --json`` prints.

    Args:
        console: Where progress and the figures go.
        quick: The `QUICK` sizes instead of `FULL`.

    Returns:
        ``{"embedded": {...}, "anvil": {...}}``, with the leaves named by `FIELDS`.
    """
    sizes = QUICK if quick else FULL
    return {node: measure_node(console, node, sizes[node]) for node in NODES}
