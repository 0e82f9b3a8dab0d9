"""Every benchmark's quick mode runs through the real CLI and prints the full result's shape.

Each test runs ``kameng bench NAME --quick --json`` as a subprocess, parses the last line of
its stdout and checks it against the benchmark module's own ``FIELDS``. The figures are from
tiny runs, so only their types and signs are checked, never their size (gas changes with the
contract). What the benchmarks' parts do is tested elsewhere: the floor's rows in
``test_bench_floor.py``, the percentile in ``test_bench_latency.py``.

This file: api, latency (the rest: test_bench_quick.py).
"""

from __future__ import annotations

import os

import pytest

from bench import api, latency
from tests.integration.bench_support import check_shape, is_int, run_quick


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
    # Locust paces each user to its rate, but over the few seconds of the quick window the
    # measured rate can come out a little above the nominal offer (101.4 of 100 in fresh clone h4)
    assert figures["requests"] > 0
    assert 0 < figures["requests_per_s"] <= 1.1 * figures["offered_per_s"], figures
    for key, (_, weight) in api.MIX.items():
        assert figures[f"endpoints.{key}.errors"] == 0, figures
        assert 0 <= figures[f"endpoints.{key}.p50_ms"] <= figures[f"endpoints.{key}.p99_ms"]
        if weight >= 5:  # hundreds of requests: each of these answered some (GET /chain may not)
            assert figures[f"endpoints.{key}.requests_per_s"] > 0, figures
    assert figures["api_workers"] == api.API_WORKERS
    assert figures["orders_paid"] == figures["orders_delivered"] > 0, figures
    assert figures["delivery_p99_ms"] > 0, figures


@pytest.mark.anvil
def test_latency_quick_has_every_field() -> None:
    figures = check_shape(run_quick("latency"), latency.FIELDS)
    assert all(isinstance(v, float) for v in figures.values()), figures
    setups = ("embedded", "anvil_1s_blocks", "anvil_1s_blocks_cpu_hog")
    for setup in setups:
        assert 0 < figures[f"{setup}.p50_ms"] <= figures[f"{setup}.p99_ms"], figures
    for setup in setups[1:]:
        assert figures[f"{setup}.orders_per_s"] > 0, figures
        assert figures[f"{setup}.load_avg_1m_start"] >= 0, figures
        assert figures[f"{setup}.load_avg_1m_end"] >= 0, figures
    # the hog ran one process per core for the whole run, and each got some CPU
    hog = "anvil_1s_blocks_cpu_hog"
    assert figures[f"{hog}.hog_processes"] == float(os.cpu_count() or 1), figures
    assert 0 < figures[f"{hog}.hog_cores"] <= figures[f"{hog}.hog_processes"] + 0.05, figures
    assert figures[f"{hog}.hog_mloops_per_s"] > 0, figures
