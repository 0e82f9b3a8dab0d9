"""Run `kameng serve` as a subprocess and wait for it, for the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def kameng_serve(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    dev_stock: int | None = 0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start `kameng serve ARGS` and yield its URL once `/chain` answers; stop it afterwards.

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
