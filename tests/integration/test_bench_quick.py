"""Every benchmark's quick mode runs through the real CLI and prints the full result's shape.

Each test runs ``kameng bench NAME --quick --json`` as a subprocess, parses the last line of
its stdout and checks it against the benchmark module's own ``FIELDS``. The figures are from
tiny runs, so only their types and signs are checked, never their size (gas changes with the
contract). What the benchmarks' parts do is tested elsewhere: the floor's rows in
``test_bench_floor.py``, the percentile in ``test_bench_latency.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bench.throughput
from bench import api, evidence, gas, indexer, keeper, latency, leaves

KAMENG = Path(sys.executable).with_name("kameng")
TIMEOUT = 600


def run_quick(name: str) -> dict[str, Any]:
    """Run ``kameng bench NAME --quick --json`` and return its flattened JSON result.

    Args:
        name: The benchmark.

    Returns:
        The result's leaves by dotted path (see `bench.leaves`).
    """
    proc = subprocess.run(
        [str(KAMENG), "bench", name, "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return leaves(result)


def check_shape(flat: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Assert the result has exactly `fields` plus ``quick: true``; return it without ``quick``.

    Args:
        flat: A flattened quick result.
        fields: The benchmark module's ``FIELDS``.

    Returns:
        The figures named by `fields`.
    """
    assert len(set(fields)) == len(fields)
    assert set(flat) == {*fields, "quick"}
    assert flat["quick"] is True
    return {f: flat[f] for f in fields}


def is_int(value: Any) -> bool:
    """Whether `value` is a JSON integer (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def test_gas_quick_has_every_field() -> None:
    figures = check_shape(run_quick("gas"), gas.FIELDS)
    assert all(is_int(v) and v > 0 for v in figures.values()), figures
    assert figures["lifecycle_single"] == sum(
        figures[f"single.{step}"] for step in ("buy", "deliver", "confirm")
    )
    # one transaction's base cost is shared by the batch, so batching is cheaper per order
    for step in ("deliver", "settle_after_window"):
        assert figures[f"batch50_per_order.{step}"] < figures[f"single.{step}"], figures
    assert figures["lifecycle_batched"] < figures["lifecycle_single"], figures
    # on-chain delivery pays for its bytes: more than a digest, more again per code
    assert figures["on_chain.deliver_1_code"] > figures["single.deliver"], figures
    assert figures["on_chain.deliver_10_codes"] > figures["on_chain.deliver_1_code"], figures
    assert figures["on_chain.batch50_per_order"] < figures["on_chain.deliver_1_code"], figures


@pytest.mark.anvil
@pytest.mark.postgres
def test_indexer_quick_has_every_field() -> None:
    figures = check_shape(run_quick("indexer"), indexer.FIELDS)
    assert all(is_int(v) for v in figures.values()), figures
    assert indexer.QUICK.target_events <= figures["events"] < indexer.FULL.target_events
    rates = ("sqlite_eps", "postgres_eps", "ceiling_eps", "baseline_eps")
    assert all(figures[f] > 0 for f in rates), figures
    assert figures["live_p99_ms"] >= 0


@pytest.mark.anvil
def test_latency_quick_has_every_field() -> None:
    figures = check_shape(run_quick("latency"), latency.FIELDS)
    assert all(isinstance(v, float) and v > 0 for v in figures.values()), figures
    for setup in ("embedded", "anvil_1s_blocks"):
        assert figures[f"{setup}.p50_ms"] <= figures[f"{setup}.p99_ms"], figures


@pytest.mark.anvil
def test_evidence_quick_has_every_field() -> None:
    figures = check_shape(run_quick("evidence"), evidence.FIELDS)
    for node in evidence.NODES:
        assert figures[f"{node}.blocks"] >= evidence.QUICK[node].blocks, figures
        for order in evidence.ORDERS:
            prefix = f"{node}.{order}."
            assert figures[prefix + "events"] >= 4, figures
            for name, value in figures.items():
                if name.startswith(prefix) and name.endswith("_under_1s"):
                    assert isinstance(value, bool), (name, value)
                elif name.startswith(prefix) and name.endswith("_ms"):
                    assert isinstance(value, float) and value > 0, (name, value)
            for call in ("get_cold", "get_cached", "buyer_secret", "verify", "build_mirror"):
                assert figures[f"{prefix}{call}_median_ms"] <= figures[f"{prefix}{call}_max_ms"]
            assert figures[prefix + "speedup"] > 0, figures
        assert figures[f"{node}.early.paid_block"] < figures[f"{node}.late.paid_block"], figures
        assert isinstance(figures[f"{node}.unknown_codes_under_1s"], bool), figures


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


@pytest.mark.anvil
@pytest.mark.postgres
def test_api_quick_has_every_field() -> None:
    figures = check_shape(run_quick("api"), api.FIELDS)
    counts = {"requests", "api_workers", "orders_paid", "orders_delivered"}
    counts |= {f for f in figures if f == "errors" or f.endswith(".errors")}
    assert all(is_int(figures[f]) for f in counts), figures
    assert all(isinstance(v, float) for f, v in figures.items() if f not in counts), figures
    # every request of the mix answered, by every endpoint, and every order paid was delivered
    assert figures["errors"] == 0, figures
    assert figures["requests"] > 0 and 0 < figures["requests_per_s"] <= figures["offered_per_s"]
    for key, (_, weight) in api.MIX.items():
        assert figures[f"endpoints.{key}.errors"] == 0, figures
        assert 0 <= figures[f"endpoints.{key}.p50_ms"] <= figures[f"endpoints.{key}.p99_ms"]
        if weight >= 5:  # hundreds of requests: each of these answered some (GET /chain may not)
            assert figures[f"endpoints.{key}.requests_per_s"] > 0, figures
    assert figures["api_workers"] == api.API_WORKERS
    assert figures["orders_paid"] == figures["orders_delivered"] > 0, figures
    assert figures["delivery_p99_ms"] > 0, figures


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
