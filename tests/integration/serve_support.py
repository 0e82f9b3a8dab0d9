"""Run `kameng serve` as a subprocess and wait for it, for the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from contracts.chain import free_port

if TYPE_CHECKING:
    from bench.world import World

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def kameng_serve(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    dev_stock: int | None = 0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start `kameng serve ARGS` and yield its URL once `/chain` answers; stop it afterwards.

    `timeout` bounds the start: on a busy two-core machine (the test workers, the fuzzer and
    slither beside them) a start took over 60 s once (fresh clone h1 of 2026-12-03).

    A development world starts with `dev_stock` demo codes on its listing: none by default, so
    that a test sees only the stock it uploads; None leaves serve's own default.
    """
    port = args[args.index("--port") + 1]
    if dev_stock is not None:
        args = [*args, "--dev-stock", str(dev_stock)]
    url = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    log = (cwd or ROOT) / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from backend.cli import main; main()", "serve", *args],
            cwd=cwd or ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"kameng serve exited {proc.returncode}:\n{log.read_text()}"
                    )
                try:
                    if httpx.get(url + "/chain", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"kameng serve did not answer:\n{log.read_text()}")
                time.sleep(0.1)  # polling the server's port, with a deadline
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def capped_node(upstream: str, most_blocks: int) -> Iterator[tuple[str, list[int]]]:
    """A JSON-RPC front to `upstream`, open to pages of any origin (CORS), that refuses an
    ``eth_getLogs`` over more than `most_blocks` blocks as many public nodes do; yields its URL
    and the spans it refused."""
    refused: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_OPTIONS(self) -> None:  # noqa: N802 - the http.server hook's name
            self._answer(b"")

        def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = json.loads(body)
            if request.get("method") == "eth_getLogs":
                query = request["params"][0]
                span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
                if span > most_blocks:
                    refused.append(span)
                    error = {"code": -32005, "message": f"max block range {most_blocks}"}
                    answer = {"jsonrpc": "2.0", "id": request["id"], "error": error}
                    self._answer(json.dumps(answer).encode())
                    return
            upstream_answer = httpx.post(
                upstream, content=body, headers={"Content-Type": "application/json"}
            )
            self._answer(upstream_answer.content)

        def _answer(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "content-type")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            del args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="capped-node", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", refused
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def node_serve_args(world: World, rpc: str, db: str, tmp: Path) -> list[str]:
    """`kameng serve` arguments for a backend on a node (`rpc`) and database (`db`) that
    commits `world`'s supplier's uploads (its key written under `tmp`)."""
    key = tmp / "supplier.key"
    key.write_text("0x" + bytes(world.supplier.key).hex())
    return [
        "--port",
        str(free_port()),
        "--rpc-url",
        rpc,
        "--database-url",
        db,
        "--escrow",
        world.escrow.address,
        "--supplier-key-file",
        str(key),
    ]


def node_serve_env(world: World) -> dict[str, str]:
    """The environment of a test backend on a node: fresh secrets and `world`'s delivery key."""
    return {
        "KAMENG_ENVIRONMENT": "test",
        "KAMENG_MASTER_KEY": os.urandom(32).hex(),
        "KAMENG_FINGERPRINT_KEY": os.urandom(32).hex(),
        "KAMENG_SESSION_KEY": os.urandom(32).hex(),
        "KAMENG_DELIVERY_KEY": "0x" + bytes(world.delivery_key.key).hex(),
    }
