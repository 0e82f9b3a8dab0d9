"""A faulty node: a JSON-RPC proxy in front of anvil injects timeouts, HTTP 429 and 5xx,
transient JSON-RPC errors, and providers' "too many results" / response-size refusals (with and
without a suggested range). The indexer retries and splits its way through, and the mirror
equals one built straight from anvil."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bench.workload import diff_mirrors, dump_mirror, small_workload
from indexer.fetch import RetryPolicy
from indexer.runner import Indexer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil

#: Most logs the proxy lets one eth_getLogs answer carry.
LOG_LIMIT = 40
#: Faults forced on the first requests, so that every kind happens at least once.
OPENING = ["429", "503", "timeout", "500-html", "rpc-internal", "502", "rpc-rate-limit"]
RANDOM_FAULTS = ["429", "500-html", "502", "503", "timeout", "rpc-internal", "rpc-rate-limit"]


class FaultyProxy:
    """Forwards JSON-RPC to `upstream`, injecting faults; counts what it did."""

    def __init__(self, upstream: str, fault_rate: float, seed: int) -> None:
        self.upstream = upstream
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.opening = list(OPENING)
        self.release = threading.Event()
        self.session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.handle(self, json.loads(body), body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _fault(self) -> str | None:
        with self.lock:
            if self.opening:
                return self.opening.pop(0)
            if self.rng.random() < self.fault_rate:
                return self.rng.choice(RANDOM_FAULTS)
        return None

    def handle(self, handler: BaseHTTPRequestHandler, request: dict[str, Any], body: bytes) -> None:
        fault = self._fault()
        if fault is not None:
            self.counts[fault] += 1
        if fault == "timeout":
            self.release.wait(3)  # the client gives up long before
            return
        if fault in ("429", "502", "503", "500-html"):
            status = 500 if fault == "500-html" else int(fault)
            payload = b"<html>upstream trouble</html>" if fault == "500-html" else b"busy"
            self._reply(handler, status, payload, {"Retry-After": "0"} if fault == "429" else {})
            return
        if fault in ("rpc-internal", "rpc-rate-limit"):
            error = (
                {"code": -32603, "message": "internal error"}
                if fault == "rpc-internal"
                else {"code": 429, "message": "Too Many Requests: rate limit exceeded"}
            )
            self._json(handler, {"jsonrpc": "2.0", "id": request["id"], "error": error})
            return
        upstream = self.session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        reply = upstream.json()
        if request.get("method") == "eth_getLogs" and len(reply.get("result") or []) > LOG_LIMIT:
            reply = self._too_many(request, reply)
        self._json(handler, reply)

    def _too_many(self, request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        params = request["params"][0]
        lo, hi = int(params["fromBlock"], 16), int(params["toBlock"], 16)
        suggestion = hex(lo + max(0, (hi - lo) // 3))
        with self.lock:
            style = self.rng.choice(["infura", "alchemy", "size"])
        self.counts[f"too-many-{style}"] += 1
        message = {
            "infura": f"query returned more than 10000 results. Try with this block range "
            f"[{hex(lo)}, {suggestion}].",
            "alchemy": f"Log response size exceeded. You can make eth_getLogs requests with up "
            f"to a 2K block range. Based on your parameters, this block range should "
            f"work: [{hex(lo)}, {suggestion}]",
            "size": "response size exceeded",
        }[style]
        code = {"infura": -32005, "alchemy": -32602, "size": -32000}[style]
        return {"jsonrpc": "2.0", "id": reply["id"], "error": {"code": code, "message": message}}

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _json(self, handler: BaseHTTPRequestHandler, reply: dict[str, Any]) -> None:
        self._reply(handler, 200, json.dumps(reply).encode(), {"Content-Type": "application/json"})


@pytest.fixture()
def proxy_factory(anvil_node: AnvilNode) -> Iterator[Any]:
    """Make proxies in front of the test's anvil; they are shut down afterwards."""
    made: list[FaultyProxy] = []

    def make(fault_rate: float, seed: int) -> FaultyProxy:
        p = FaultyProxy(anvil_node.url, fault_rate, seed).__enter__()
        made.append(p)
        return p

    yield make
    for p in made:
        p.__exit__()


def test_indexing_completes_through_timeouts_429_5xx_and_too_many_results(
    anvil_node: AnvilNode, proxy_factory: Any, tmp_path: Path
) -> None:
    work = small_workload(anvil_node.url, rounds=2, orders=80, per_block=20, batch=20)
    proxy = proxy_factory(fault_rate=0.2, seed=11)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    policy = RetryPolicy(base=0.005, cap=0.05, max_attempts=200)
    with Indexer(
        proxy.url,
        url,
        work.escrow,
        finality_depth=3,
        rpc_timeout=0.3,
        retry=policy,
        initial_range=50,
        max_range=400,
    ) as ix:
        assert ix.run_once() == work.total_events()
        status = ix.status()
    for kind in OPENING:
        assert proxy.counts[kind] >= 1, proxy.counts
    assert sum(v for k, v in proxy.counts.items() if k.startswith("too-many")) >= 3
    assert {"too-many-infura", "too-many-size"} <= set(proxy.counts) or {
        "too-many-alchemy",
        "too-many-size",
    } <= set(proxy.counts), proxy.counts
    assert status["retries"] >= sum(proxy.counts[k] for k in RANDOM_FAULTS), (status, proxy.counts)
    assert status["splits"] >= 3
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    with Indexer(anvil_node.url, clean, work.escrow, finality_depth=3) as direct:
        direct.run_once()
    assert diff_mirrors(dump_mirror(url), dump_mirror(clean)) == []


def test_following_through_a_faulty_node(
    anvil_node: AnvilNode, proxy_factory: Any, tmp_path: Path
) -> None:
    """Each pass of the live loop also survives faults: run_once after every new block."""
    work = small_workload(anvil_node.url, rounds=1, orders=20, per_block=10, batch=10)
    proxy = proxy_factory(fault_rate=0.3, seed=5)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    policy = RetryPolicy(base=0.005, cap=0.05, max_attempts=200)
    with Indexer(
        proxy.url, url, work.escrow, finality_depth=2, rpc_timeout=0.3, retry=policy
    ) as ix:
        ix.run_once()
        for _ in range(5):
            work.buy_block(3, work.listings[-1])
            ix.run_once()
            assert ix.checkpoint is not None and ix.checkpoint.number == work.driver.head()
    assert len(dump_mirror(url)["raw_events"]) == work.total_events()
