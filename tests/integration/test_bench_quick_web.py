"""The web benchmark's quick mode runs through the real CLI: `kameng serve` on the embedded
chain, and one Lighthouse run (Node, Debian's Chromium) of the store page on a simulated phone.

Only the shape and the figures that do not depend on the machine's speed are checked: the
scores are 0-100 (their size varies with the load on a shared machine; the README holds a
full run's), every text asset is compressed, the crypto library is not loaded, and the
JavaScript came compressed (fewer bytes transferred than its uncompressed size).
"""

from __future__ import annotations

from bench import web
from tests.integration.bench_support import check_shape, is_int, run_quick

INTS = {*web.CATEGORIES, "js_bytes", "js_bytes_uncompressed", "uncompressed_assets"}


def test_web_quick_has_every_field() -> None:
    figures = check_shape(run_quick("web"), web.FIELDS)
    store = {f.removeprefix("mobile.store."): v for f, v in figures.items() if "mobile.store." in f}
    assert set(store) == set(web.FIGURES)
    # the quick run measures the store on a phone only; the others are null, not made up
    assert all(v is None for f, v in figures.items() if not f.startswith("mobile.store.")), figures
    for name, value in store.items():
        if name in INTS:
            assert is_int(value), (name, value)
        elif name != "libsodium_loaded":
            assert isinstance(value, float) and value >= 0, (name, value)
    assert all(0 <= store[c] <= 100 for c in web.CATEGORIES), store
    assert 0 < store["fcp_ms"] <= store["lcp_ms"], store
    assert 0 < store["observed_fcp_ms"] <= store["observed_lcp_ms"], store
    assert 0 < store["js_bytes"] < store["js_bytes_uncompressed"], store
    assert store["uncompressed_assets"] == 0, store
    assert store["libsodium_loaded"] is False, store
    assert store["benchmark_index"] > 0, store
