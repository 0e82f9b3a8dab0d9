"""Every benchmark's quick mode runs through the real CLI and prints the full result's shape.

Each test runs ``kameng bench NAME --quick --json`` as a subprocess, parses the last line of
its stdout and checks it against the benchmark module's own ``FIELDS``. The figures are from
tiny runs, so only their types and signs are checked, never their size (gas changes with the
contract). What the benchmarks' parts do is tested elsewhere: the floor's rows in
``test_bench_floor.py``, the percentile in ``test_bench_latency.py``.

This file: throughput, keeper (the rest: test_bench_quick.py).
"""

from __future__ import annotations

import pytest

import bench.throughput
from bench import keeper
from tests.integration.bench_support import check_shape, run_quick


@pytest.mark.anvil
@pytest.mark.postgres
def test_throughput_quick_has_every_field() -> None:
    figures = check_shape(run_quick("throughput"), bench.throughput.FIELDS)
    steps = figures.pop("steps")
    assert 1 <= len(steps) <= len(bench.throughput.QUICK_STEPS), steps
    rates = [s["offered_per_s"] for s in steps]
    assert rates == [float(r) for r in bench.throughput.QUICK_STEPS[: len(steps)]]
    base = {f: figures[f"baseline.{f}"] for f in bench.throughput.STEP_FIELDS}
    assert base["orders_per_deliver_tx"] == 1.0, base  # the naive baseline: one order a deliver
    for step in [*steps, base]:
        assert set(step) == set(bench.throughput.STEP_FIELDS), step
        assert isinstance(step["kept_up"], bool)
        # every buy sent was paid (the bench checks it against the OrderPaid logs)
        assert step["orders"] > 0 and 0 <= step["backlog_at_end"] <= step["orders"], step
        assert 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"], step
        assert step["delivered_per_s"] >= 0 and step["deliver_txs_per_block"] > 0, step
        # the generator could offer at least twice the rate asked
        assert step["send_capacity_per_s"] >= 2 * step["offered_per_s"], step
        assert all(step[f] >= 0 for f in bench.throughput.STEP_FIELDS if f.startswith("cpu_")), step
        assert step["cpu_agent_s"] > 0, step
    kept = [s["offered_per_s"] for s in steps if s["kept_up"]]
    assert figures["max_sustained_orders_per_s"] == int(max(kept, default=0.0)), figures
    assert figures["baseline_orders_per_s"] == base["delivered_per_s"]
    assert figures["cpus"] >= 1 and figures["delivery_batch_size"] >= 1, figures


@pytest.mark.anvil
def test_keeper_quick_has_every_field() -> None:
    figures = check_shape(run_quick("keeper"), keeper.FIELDS)
    assert figures["orders"] == keeper.QUICK_ORDERS, figures
    assert figures["skipped"] == 0, figures  # no gas paid for an order already settled
    assert 1 <= figures["batches"] <= figures["orders"], figures
    # an order due in block B is seen by the keeper only once B exists: B+1 is the floor
    assert 1 <= figures["lag_blocks_p50"] <= figures["lag_blocks_p99"] <= figures["lag_blocks_max"]
    assert figures["gas_per_order"] > 0 and figures["batch50_gas_per_order"] > 0, figures
    assert figures["gas_ratio"] == round(
        figures["gas_per_order"] / figures["batch50_gas_per_order"], 3
    )
