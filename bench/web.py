"""The web front-end as Lighthouse sees it: scores, paint times and the JavaScript a phone loads.

One **`kameng serve`** on the embedded chain with a stocked development listing (the store has
a product), and **Lighthouse** (npm ``lighthouse``, pinned in package.json, run by Node) driving
Debian's Chromium headless against it, one run per page and form factor:

- pages: the **store** (``#/``) and the **product** page of the development listing's product
  (``#/product/<sku>``). A buyer's order page is not measured: it needs a wallet that bought
  the order, which Lighthouse's navigation cannot drive;
- form factors: **mobile** (Lighthouse's default: a mid-range phone's screen, its CPU 4x
  slower and slow 4G, simulated) and **desktop** (``--preset=desktop``);
- categories: performance, accessibility and best practices, as 0-100 scores.

Per run the result has the three scores; the simulated (throttled) first and largest contentful
paint, total blocking time and cumulative layout shift, which make up the performance score; as
their baseline from the same run, the paints **observed** on this machine without throttling
(``observed_*``); the JavaScript the page loaded, as transferred (compressed, with headers) and
uncompressed (``js_bytes`` against ``js_bytes_uncompressed``); how many of the page's own text
assets (document, scripts, stylesheets) of 1 KiB or more came without ``Content-Encoding``
(fetched again here with ``Accept-Encoding: gzip``); whether the crypto library (libsodium) was
loaded; Lighthouse's own measure of this machine's speed (``benchmark_index``, about 1,000+ on a
fast desktop; below that the simulated times are pessimistic) and the 1-minute load average
before the run (the machine is shared).

Targets (issue 18), mobile store: performance >= 90, accessibility 100, best practices 100, no
uncompressed asset, libsodium not loaded. ``--quick`` makes only the mobile run of the store, for
CI (about 35 s of CPU in all, a third of it starting the server; 2.5 minutes of wall time on this
two-core machine at a load average of 20); the figures of the runs it skips are ``null``.

Nothing here needs the internet: Chromium runs with its background networking off, and
Lighthouse fetches nothing (its stack packs and axe are bundled).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench._serve import Serve
from contracts.chain import free_port

if TYPE_CHECKING:
    from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE = ROOT / "node_modules" / "lighthouse" / "cli" / "index.js"
CHROMIUM = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
#: Headless, root without a sandbox, and no calls to Google's services (no internet here).
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run "
    "--disable-background-networking --disable-component-update --disable-sync "
    "--disable-quic --disable-default-apps --disable-extensions"
)
CATEGORIES = {"performance": "performance", "accessibility": "accessibility"}
CATEGORIES["best_practices"] = "best-practices"
PAGES = ("store", "product")
FORM_FACTORS = ("mobile", "desktop")
#: Text assets smaller than this are served as they are (the server's gzip minimum_size).
COMPRESS_MIN_BYTES = 1024
#: A page's own assets that should be compressed (Lighthouse's resource types).
TEXT_TYPES = {"Document", "Script", "Stylesheet"}
FIGURES = (
    *CATEGORIES,
    "fcp_ms",
    "lcp_ms",
    "tbt_ms",
    "cls",
    "observed_fcp_ms",
    "observed_lcp_ms",
    "js_bytes",
    "js_bytes_uncompressed",
    "uncompressed_assets",
    "libsodium_loaded",
    "benchmark_index",
    "load_avg_1m",
)
FIELDS = tuple(f"{ff}.{page}.{fig}" for ff in FORM_FACTORS for page in PAGES for fig in FIGURES)
"""Dotted paths of the result's leaves: scores, byte and asset counts are ints, times floats,
``libsodium_loaded`` a bool; in quick mode every figure of the runs but ``mobile.store`` is
null."""
#: Seconds one Lighthouse run may take on a loaded machine.
RUN_TIMEOUT = 180


@contextmanager
def serve(tmp: Path, timeout: float = 180.0) -> Iterator[str]:
    """``kameng serve`` on the embedded chain, its development listing stocked with a few codes,
    in one process (``--single-process``: the page is served the same way, and there is one
    Python process fewer on a shared machine); yields its URL once ``GET /chain`` answers.

    Raises:
        RuntimeError: it exited or did not answer within `timeout` seconds.
    """
    args = ["--port", str(free_port()), "--single-process", "--dev-stock", "10"]
    args += ["--dev-accounts", str(tmp / "dev-accounts.json")]
    server = Serve(args, tmp / "serve.log", {**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        server.wait_ready(timeout)
        yield server.url
    finally:
        server.stop()


def lighthouse(url: str, form_factor: str, out: Path) -> dict[str, Any]:
    """Run Lighthouse once on `url`; its JSON report.

    Args:
        url: The page.
        form_factor: ``mobile`` (Lighthouse's default settings) or ``desktop``.
        out: Where the report is written.

    Raises:
        RuntimeError: Node, Lighthouse or Chromium is missing, or the run failed.
    """
    node = shutil.which("node")
    if node is None or not LIGHTHOUSE.exists():
        raise RuntimeError("Lighthouse is not installed: run scripts/setup.sh (npm ci)")
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM} (set CHROME_PATH)")
    args = [
        node,
        str(LIGHTHOUSE),
        url,
        "--output=json",
        f"--output-path={out}",
        "--quiet",
        f"--only-categories={','.join(CATEGORIES.values())}",
        f"--chrome-flags={CHROME_FLAGS}",
        "--disable-full-page-screenshot",
        # unscored: the film strip, and bf-cache's second navigation (away and back)
        "--skip-audits=screenshot-thumbnails,final-screenshot,bf-cache",
    ]
    if form_factor == "desktop":
        args.append("--preset=desktop")
    proc = subprocess.run(
        args,
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"lighthouse failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.read_text())
    if report.get("runtimeError"):
        raise RuntimeError(f"lighthouse: {report['runtimeError']}")
    return report


def uncompressed_assets(origin: str, urls: list[str]) -> int:
    """How many of `urls` on `origin` of ``COMPRESS_MIN_BYTES`` or more the server sends
    without a ``Content-Encoding`` to a client that accepts gzip."""
    count = 0
    with httpx.Client(headers={"Accept-Encoding": "gzip"}, timeout=30) as client:
        for url in urls:
            if not url.startswith(origin):
                continue
            response = client.get(url)
            response.raise_for_status()
            if len(response.content) >= COMPRESS_MIN_BYTES and not response.headers.get(
                "content-encoding"
            ):
                count += 1
    return count


def figures(report: dict[str, Any], origin: str, load: float) -> dict[str, Any]:
    """One run's figures (`FIGURES`) from its Lighthouse report.

    Args:
        report: Lighthouse's JSON report.
        origin: The server's origin (``http://127.0.0.1:PORT``).
        load: The 1-minute load average before the run.
    """
    audits = report["audits"]
    metrics = audits["metrics"]["details"]["items"][0]
    requests = audits["network-requests"]["details"]["items"]
    scripts = [r for r in requests if r.get("resourceType") == "Script"]
    text_urls = [r["url"].split("#")[0] for r in requests if r.get("resourceType") in TEXT_TYPES]
    scores = {
        key: round(100 * report["categories"][name]["score"]) for key, name in CATEGORIES.items()
    }
    return {
        **scores,
        "fcp_ms": float(metrics["firstContentfulPaint"]),
        "lcp_ms": float(metrics["largestContentfulPaint"]),
        "tbt_ms": float(metrics["totalBlockingTime"]),
        "cls": round(float(metrics["cumulativeLayoutShift"]), 4),
        "observed_fcp_ms": float(metrics["observedFirstContentfulPaint"]),
        "observed_lcp_ms": float(metrics["observedLargestContentfulPaint"]),
        "js_bytes": sum(int(r.get("transferSize", 0)) for r in scripts),
        "js_bytes_uncompressed": sum(int(r.get("resourceSize", 0)) for r in scripts),
        "uncompressed_assets": uncompressed_assets(origin, sorted(set(text_urls))),
        "libsodium_loaded": any("libsodium" in r["url"] for r in scripts),
        "benchmark_index": float(report["environment"]["benchmarkIndex"]),
        "load_avg_1m": round(load, 2),
    }


def _failing(report: dict[str, Any]) -> list[str]:
    """The scored audits that did not pass, as ``category: audit (value)``."""
    out = []
    for category in report["categories"].values():
        for ref in category["auditRefs"]:
            audit = report["audits"][ref["id"]]
            score = audit.get("score")
            if ref.get("weight", 0) > 0 and score is not None and score < 1:
                value = audit.get("displayValue") or f"score {score}"
                out.append(f"{category['id']}: {ref['id']} ({value})")
    return out


def measure(console: Console, quick: bool) -> dict[str, Any]:
    """Serve the store and run Lighthouse on each page and form factor (`run`'s result)."""
    # a run quick mode skips keeps its fields, each null
    result: dict[str, Any] = {ff: {p: dict.fromkeys(FIGURES) for p in PAGES} for ff in FORM_FACTORS}
    with tempfile.TemporaryDirectory(prefix="kameng-bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        console.print("starting kameng serve on the embedded chain…")
        with serve(tmp) as origin:
            listings = httpx.get(origin + "/catalog/listings", timeout=30).json()
            if not listings:
                raise RuntimeError("the development store has no listing")
            urls = {
                "store": f"{origin}/#/",
                "product": f"{origin}/#/product/{listings[0]['sku']}",
            }
            runs = [("mobile", "store")]
            if not quick:
                runs += [(ff, p) for ff in FORM_FACTORS for p in PAGES if (ff, p) != runs[0]]
            for ff, page in runs:
                load = os.getloadavg()[0]
                console.print(f"lighthouse {ff} {page}: {urls[page]}")
                report = lighthouse(urls[page], ff, tmp / f"{ff}-{page}.json")
                run = figures(report, origin, load)
                result[ff][page] = run
                console.print(
                    f"  performance {run['performance']}, accessibility {run['accessibility']}, "
                    f"best practices {run['best_practices']}; FCP {run['fcp_ms']:.0f} ms, "
                    f"LCP {run['lcp_ms']:.0f} ms, TBT {run['tbt_ms']:.0f} ms; JS "
                    f"{run['js_bytes'] / 1024:.0f} KiB of {run['js_bytes_uncompressed'] / 1024:.0f}"
                )
                for line in _failing(report):
                    console.print(f"  below full marks: {line}")
    return result


def run(console: Console, quick: bool = False) -> dict[str, Any]:
    """The measurement; the dict is the JSON line ``kameng bench web --json`` prints.

    Args:
        console: Where progress and the figures go.
        quick: Only the mobile run of the store page.

    Returns:
        ``{form factor: {page: figures}}``, the leaves named by `FIELDS`.
    """
    return measure(console, quick)
