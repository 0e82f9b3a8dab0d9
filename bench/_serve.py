"""One `kameng serve` subprocess for the benchmarks that measure it from outside (api, web)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

#: `kameng` without relying on the console script being on PATH.
KAMENG = [sys.executable, "-c", "from backend.cli import main; main()"]


class Serve:
    """One `kameng serve` process, its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        """Start ``kameng serve ARGS``."""
        self.port = int(args[args.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [*KAMENG, "serve", *args], stdout=self._out, stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until ``GET /chain`` answers.

        Raises:
            RuntimeError: the process exited or did not answer in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kameng serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/chain", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kameng serve did not answer:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)  # polling the server's port, with a deadline

    def stop(self) -> None:
        """SIGINT, as Ctrl-C; SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
