"""The keeper settling due orders on its own: lag, throughput and gas (issue 13).

One run of the whole backend in this process (API, indexer, delivery agent and keeper, on
SQLite) against anvil mining a block every second:

1. buyers pay for ``ORDERS`` orders at ``RATE`` per second (signed in a child process, as in
   `bench.latency`), and the delivery agent delivers them, so their dispute deadlines are
   spread over the blocks they were delivered in;
2. the chain's clock is moved to a few seconds before the first deadline (``evm_increaseTime``;
   the dispute window is a day), and from then on nobody does anything but the keeper;
3. when the mirror shows every order settled, the keeper's transactions are read back from
   the chain.

Reported:

- ``lag_blocks_p50``/``p99``/``max``: per order, the block that settled it minus the first
  block in which it could be settled (the first block whose timestamp is past its deadline).
  The keeper reads the newest block's time, so an order becomes due in block B and can land in
  B+1 at the earliest: 1 is the floor. Target: p99 <= 2.
- ``lag_s_p50``/``p99``: the same in chain seconds, from the deadline to the settling block.
- ``orders_settled_per_s``: orders divided by the chain seconds from the first order becoming
  due to the last one settled (the deadlines are spread over the load's seconds, so this is a
  floor on what the keeper can do, not its ceiling).
- ``gas_per_order``: the gas of every keeper transaction divided by the orders settled;
  ``batch50_gas_per_order``: ``kameng bench gas``'s figure for a batch of 50, measured in the
  same run; ``gas_ratio`` is the first over the second. Target: <= 1.10. The keeper batches
  whatever is due together (at most ``keeper_batch_size``), so batches are as large as the
  orders that fall due in one block.
- ``batches``, ``orders_per_batch``, and ``skipped``: orders the contract skipped in a keeper
  transaction (``SettlementSkipped``: gas paid for work already done), which must be 0.

``--quick`` runs the same parts with ``QUICK_ORDERS`` orders at ``QUICK_RATE`` per second: it
says the benchmark works; its batches are too small for its gas figure to mean anything.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_typing import HexStr
from sqlalchemy import select

from backend.config import Settings
from backend.runtime import Runtime
from bench import gas
from bench.latency import _fund, _order_id, percentile, run_load, start_backend
from contracts.chain import AnvilNode
from contracts.encoding import OrderState

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from rich.console import Console

    from contracts.chain import Chain

ORDERS = 500
RATE = 50.0
QUICK_ORDERS = 30
QUICK_RATE = 15.0
BUYERS = 100
POLL_S = 0.5
FIELDS = (
    "orders",
    "batches",
    "orders_per_batch",
    "skipped",
    "lag_blocks_p50",
    "lag_blocks_p99",
    "lag_blocks_max",
    "lag_s_p50",
    "lag_s_p99",
    "orders_settled_per_s",
    "gas_per_order",
    "batch50_gas_per_order",
    "gas_ratio",
)
"""The result's leaves: counts, lags in blocks and chain seconds, a rate, gas and a ratio."""


def _settings() -> Settings:
    # The load signs many buyers in from one address (see bench.latency); no notifications.
    return Settings(
        environment="development",
        order_source="auto",
        rate_limit_scale=1000.0,
        notify=False,
        keeper=True,
        keeper_poll_seconds=POLL_S,
    )


def _count(runtime: Runtime, states: tuple[OrderState, ...], ids: set[int]) -> int:
    from indexer import models as mirror

    with runtime.sessions() as session:
        rows = session.scalars(
            select(mirror.Order.order_id).where(mirror.Order.state.in_([int(s) for s in states]))
        )
        return len({int(r) for r in rows} & ids)


def _wait(runtime: Runtime, what: str, done: Any, timeout: float) -> None:
    """Poll `done()` until true, checking the backend's workers are alive.

    Raises:
        RuntimeError: `timeout` seconds passed first.
    """
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        runtime.check()
        time.sleep(0.1)  # polling the mirror


def _deadlines(runtime: Runtime, ids: set[int]) -> dict[int, int]:
    from indexer import models as mirror

    with runtime.sessions() as session:
        rows = session.execute(
            select(mirror.Order.order_id, mirror.Order.deadline).where(
                mirror.Order.order_id.in_(ids)
            )
        ).all()
    return {int(oid): int(deadline) for oid, deadline in rows}


def _unfinished(runtime: Runtime) -> int:
    """The keeper's transactions not yet confirmed from the chain (the mirror can show an
    order settled before the keeper's next pass reads the receipt)."""
    from backend.gateway.models import FINAL, ChainTx

    with runtime.sessions() as session:
        return len(session.scalars(select(ChainTx.id).where(ChainTx.state.not_in(FINAL))).all())


def _keeper_receipts(runtime: Runtime, chain: Chain) -> list[Any]:
    from backend.gateway.models import ChainTx, TxState

    with runtime.sessions() as session:
        hashes = session.scalars(
            select(ChainTx.tx_hash).where(
                ChainTx.intent == "settle", ChainTx.state == TxState.MINED
            )
        ).all()
    return [chain.w3.eth.get_transaction_receipt(HexStr(str(h))) for h in hashes]


def _settled_in(runtime: Runtime, receipts: list[Any]) -> tuple[dict[int, int], int]:
    """Each settled order's block, and how many orders the contract skipped."""
    settled: dict[int, int] = {}
    skipped = 0
    for receipt in receipts:
        for log in receipt["logs"]:
            decoded = runtime.escrow.codec.decode_log(dict(log))
            if decoded is None:
                continue
            if decoded.name == "OrderSettled":
                settled[int(decoded.args["orderId"])] = int(receipt["blockNumber"])
            elif decoded.name == "SettlementSkipped":
                skipped += 1
    return settled, skipped


def _block_times(chain: Chain, first: int, last: int) -> dict[int, int]:
    return {n: int(chain.w3.eth.get_block(n)["timestamp"]) for n in range(first, last + 1)}


def measure(console: Console, orders: int, rate: float) -> dict[str, Any]:
    """Pay, deliver, move the clock to the deadlines, and let the keeper settle everything."""
    node = AnvilNode()
    chain = node.start()
    runtime: Runtime | None = None
    try:
        runtime = start_backend(chain, _settings(), codes=orders + 20)
        escrow, dev = runtime.escrow, runtime.dev
        assert dev is not None
        buyers: list[LocalAccount] = [Account.create() for _ in range(BUYERS)]
        _fund(chain, buyers)
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("evm_setIntervalMining", [1])
        console.print(f"[dim]anvil, 1-s blocks: {orders} orders at {rate:g}/s[/dim]")
        hashes, _ = run_load(
            url=node.url,
            escrow=escrow.address,
            listing_id=dev.listing_id,
            keys=["0x" + bytes(b.key).hex() for b in buyers],
            rate=rate,
            total=orders,
            gas_price=3 * escrow.tx.gas_price(),
            chain_id=chain.chain_id,
        )
        receipts = [
            chain.w3.eth.wait_for_transaction_receipt(HexStr(h), timeout=60, poll_latency=0.1)
            for h in hashes
        ]
        ids = {_order_id(escrow, r) for r in receipts}
        _wait(
            runtime,
            "every order delivered",
            lambda: _count(runtime, (OrderState.DELIVERED,), ids) == len(ids),
            120,
        )
        deadlines = _deadlines(runtime, ids)
        first_deadline = min(deadlines.values())
        skip = first_deadline - chain.timestamp() - 3
        console.print(
            f"[dim]delivered; moving the clock {skip} s on, to 3 s before the first deadline; "
            "from now on only the keeper acts[/dim]"
        )
        chain.make_request("evm_increaseTime", [skip])
        _wait(
            runtime,
            "the keeper settling every order",
            lambda: _count(runtime, (OrderState.COMPLETED,), ids) == len(ids),
            120,
        )
        _wait(
            runtime, "the keeper confirming its transactions", lambda: _unfinished(runtime) == 0, 30
        )
        runtime.check()
        keeper_receipts = _keeper_receipts(runtime, chain)
        settled, skipped = _settled_in(runtime, keeper_receipts)
        if set(settled) != ids:
            raise RuntimeError(f"{len(ids - set(settled))} orders not settled by the keeper")
        first_block = min(int(r["blockNumber"]) for r in receipts)
        times = _block_times(chain, first_block, max(settled.values()))
        eligible = {
            oid: min(n for n, ts in times.items() if ts > deadlines[oid]) for oid in settled
        }
        lag_blocks = [float(settled[o] - eligible[o]) for o in settled]
        lag_s = [float(times[settled[o]] - deadlines[o]) for o in settled]
        span = times[max(settled.values())] - times[min(eligible.values())]
        gas_used = sum(int(r["gasUsed"]) for r in keeper_receipts)
    finally:
        if runtime is not None:
            runtime.stop()
        node.stop()
    return {
        "orders": len(settled),
        "batches": len(keeper_receipts),
        "orders_per_batch": round(len(settled) / len(keeper_receipts), 1),
        "skipped": skipped,
        "lag_blocks_p50": percentile(lag_blocks, 50),
        "lag_blocks_p99": percentile(lag_blocks, 99),
        "lag_blocks_max": max(lag_blocks),
        "lag_s_p50": percentile(lag_s, 50),
        "lag_s_p99": percentile(lag_s, 99),
        "orders_settled_per_s": round(len(settled) / max(1, span), 1),
        "gas_per_order": round(gas_used / len(settled)),
    }


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """The keeper's run on anvil, and the gas benchmark's batch-of-50 figure as the baseline.

    Args:
        console: Where progress goes.
        quick: Few orders at a low rate (seconds; for CI).

    Returns:
        The figures named by `FIELDS`.
    """
    orders, rate = (QUICK_ORDERS, QUICK_RATE) if quick else (ORDERS, RATE)
    result = measure(console, orders, rate)
    console.print(f"keeper: {result}")
    console.print("[dim]baseline: `kameng bench gas`'s batch of 50, on the embedded chain[/dim]")
    baseline = gas.settle_per_order_in_a_batch(console)
    result["batch50_gas_per_order"] = baseline
    result["gas_ratio"] = round(result["gas_per_order"] / baseline, 3)
    return result


__all__ = ["FIELDS", "measure", "run"]
