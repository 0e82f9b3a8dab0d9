"""Every benchmark's quick mode runs through the real CLI and prints the full result's shape.

Each test runs ``kameng bench NAME --quick --json`` as a subprocess, parses the last line of
its stdout and checks it against the benchmark module's own ``FIELDS``. The figures are from
tiny runs, so only their types and signs are checked, never their size (gas changes with the
contract). What the benchmarks' parts do is tested elsewhere: the floor's rows in
``test_bench_floor.py``, the percentile in ``test_bench_latency.py``.

This file: gas, indexer, evidence; test_bench_quick_api.py: api, latency;
test_bench_quick_throughput.py: throughput, keeper.
"""

from __future__ import annotations

import pytest

from bench import evidence, gas, indexer
from tests.integration.bench_support import check_shape, is_int, run_quick


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
