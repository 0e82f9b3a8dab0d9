"""The latency benchmark's percentile. The benchmark itself runs end to end, at small sizes,
in ``test_bench_quick_api.py`` (``kameng bench latency --quick``)."""

from __future__ import annotations

from bench import latency


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency.percentile(values, 50) == 50.0
    assert latency.percentile(values, 99) == 99.0
    assert latency.percentile([7.0], 99) == 7.0
