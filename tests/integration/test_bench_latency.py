"""The latency benchmark runs end to end (small sizes; a benchmark, not a timed test)."""

from __future__ import annotations

import pytest
from rich.console import Console

from bench import latency

pytestmark = pytest.mark.anvil


def test_latency_benchmark_measures_both_setups() -> None:
    console = Console(quiet=True)
    embedded = latency.embedded(console, orders=5)
    assert set(embedded) == {"p50_ms", "p99_ms"}
    assert 0 < embedded["p50_ms"] <= embedded["p99_ms"]
    anvil = latency.anvil_1s_blocks(console, rate=10, seconds=3)
    assert set(anvil) == {"p50_ms", "p99_ms", "orders_per_s"}
    assert 0 < anvil["p50_ms"] <= anvil["p99_ms"] and anvil["orders_per_s"] > 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency.percentile(values, 50) == 50.0
    assert latency.percentile(values, 99) == 99.0
    assert latency.percentile([7.0], 99) == 7.0
