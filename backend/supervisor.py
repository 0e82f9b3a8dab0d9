"""`kameng serve`'s supervisor: the API in a child process, restarted when it dies.

The supervisor process keeps the chain (the embedded one, or the connection to a node), the
indexer thread and the delivery agent thread of a `Runtime`. The API (uvicorn) runs in a child
process, `backend.api_worker`, so that a crash there (a segmentation fault on hostile input, an
out-of-memory kill, SIGKILL) takes down only the API:

- the supervisor binds the listening socket once and hands it to each child, so the port never
  changes and connections made while a child restarts wait in the socket's backlog;
- the child reaches the embedded chain and the supervisor's worker report through a loopback
  server with a random token (`backend.internal_rpc.InternalServer`); its secrets (settings,
  suppliers' keys, that token) go through its stdin pipe, never its command line;
- when the child exits, for any reason, the supervisor logs how (exit code or signal) and starts
  another after a pause: `restart_delay` at first, doubling with each crash in a row up to
  `max_delay`, back to `restart_delay` once a child has stayed up `stable_after` seconds;
- SIGINT or SIGTERM stop the child (its stdin is closed and it gets SIGTERM; SIGKILL after
  `stop_timeout`), then the internal server and the runtime's threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend import api_worker
from backend.api_worker import WorkerConfig, settings_values
from backend.internal_rpc import InternalServer
from backend.workers import RUNNING, WorkerReport, dead

if TYPE_CHECKING:
    from types import FrameType

    from backend.runtime import Runtime

log = logging.getLogger("kameng.supervisor")

#: The API worker's module, run as ``python -m``: its name as imported here, so that it is
#: ``backend.api_worker`` in a checkout and ``kameng.backend.api_worker`` in the installed wheel
#: (scripts/build_wheel.py), with no name written twice.
WORKER_MODULE = api_worker.__name__
#: The directory that holds the top-level package (the checkout, or site-packages for the
#: wheel's ``kameng``), put on the child's import path: one level up per dot in this module's
#: name, so it is never a folder that would make ``backend`` importable by itself.
PACKAGE_ROOT = Path(__file__).resolve().parents[__name__.count(".")]


def describe_exit(returncode: int) -> str:
    """How a child ended: ``exited with code N`` or ``killed by signal SIGNAME``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exited with code {returncode}"


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on `host`:`port` (IPv6 when the host has a colon).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


@dataclass
class _Child:
    """One API worker process."""

    process: subprocess.Popen[bytes]
    started: float


@dataclass
class ApiSupervisor:
    """Runs the API of `runtime` in a child process and keeps one running.

    Attributes:
        runtime: The runtime whose chain, database, indexer and agent the supervisor keeps
            (its workers are started by the caller).
        host: The interface to listen on.
        port: The port to listen on.
        domain: The SIWE domain (host[:port] of the public URL).
        public_url: The URL clients use (for the advertised ``/rpc``).
        log_level: uvicorn's log level in the child.
        restart_delay: Seconds before restarting after a first crash.
        max_delay: The longest pause between restarts.
        stable_after: A child up this long resets the pause to `restart_delay`.
        stop_timeout: Seconds a child gets to stop before SIGKILL.
    """

    runtime: Runtime
    host: str = "127.0.0.1"
    port: int = 8000
    domain: str = "localhost"
    public_url: str | None = None
    log_level: str = "info"
    restart_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 30.0
    stop_timeout: float = 15.0
    restarts: int = 0
    _child: _Child | None = field(default=None, repr=False)
    _last_exit: str | None = field(default=None, repr=False)
    _events: queue.SimpleQueue[tuple[str, Any]] = field(
        default_factory=queue.SimpleQueue, repr=False
    )
    _listener: socket.socket | None = field(default=None, repr=False)
    _internal: InternalServer | None = field(default=None, repr=False)

    # ------------------------------------------------------------ reporting

    def report(self) -> WorkerReport:
        """The indexer's and agent's liveness, the API worker's, and its restarts."""
        workers = dict(self.runtime.worker_report().workers)
        child = self._child
        if child is not None and child.process.poll() is None:
            workers["api"] = RUNNING
        else:
            workers["api"] = dead(self._last_exit or "not started")
        return WorkerReport(workers=workers, api_restarts=self.restarts)

    # ------------------------------------------------------------ running

    def bind(self) -> socket.socket:
        """Bind the listening socket (once; kept across restarts).

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        if self._listener is None:
            self._listener = bind_listener(self.host, self.port)
        return self._listener

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM, restarting the API worker whenever it dies.

        Installs handlers for SIGINT and SIGTERM (so call it from the main thread) and puts
        the previous ones back before returning. Returns the exit status (0).

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        listener = self.bind()
        proxy = None
        if self.runtime.chain.kind == "embedded":
            from backend.rpc_proxy import JsonRpcProxy

            proxy = JsonRpcProxy(self.runtime.chain)
        self._internal = InternalServer(self.report, proxy).start()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._loop(listener)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_child()
            self._internal.stop()
            listener.close()
            self._listener = None
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # SimpleQueue.put is safe in a signal handler (it never blocks on a lock we hold).
        self._events.put(("stop", signum))

    def _loop(self, listener: socket.socket) -> None:
        crashes_in_a_row = 0
        self._spawn(listener)
        while True:
            kind, value = self._events.get()
            if kind == "stop":
                log.info("%s: stopping the API worker", signal.Signals(value).name)
                return
            if kind == "exit":
                process, returncode = value
                if self._child is None or process is not self._child.process:
                    continue  # a child we already gave up on
                uptime = time.monotonic() - self._child.started
                self._last_exit = describe_exit(returncode)
                what = f"API worker (pid {process.pid}) {self._last_exit} after {uptime:.1f} s"
            elif kind == "spawn_failed":
                uptime = 0.0
                self._last_exit = f"could not start ({value})"
                what = f"the API worker {self._last_exit}"
            else:
                continue
            if uptime >= self.stable_after:
                crashes_in_a_row = 0
            crashes_in_a_row += 1
            delay = min(self.max_delay, self.restart_delay * 2 ** (crashes_in_a_row - 1))
            log.error(
                "%s; the indexer and the delivery agent go on; restarting the API worker in %.1f s",
                what,
                delay,
            )
            try:
                kind, value = self._events.get(timeout=delay)
            except queue.Empty:
                pass
            else:
                if kind == "stop":
                    log.info("%s: not restarting the API worker", signal.Signals(value).name)
                    return
            self.restarts += 1
            if self._spawn(listener):
                assert self._child is not None
                log.warning(
                    "API worker restarted (pid %d, restart %d)",
                    self._child.process.pid,
                    self.restarts,
                )

    def _config(self, listener: socket.socket) -> WorkerConfig:
        runtime = self.runtime
        assert self._internal is not None
        embedded = runtime.chain.kind == "embedded"
        if embedded:
            chain_url, chain_token = self._internal.url, self._internal.token
        else:
            assert runtime.chain.rpc_url is not None
            chain_url, chain_token = runtime.chain.rpc_url, None
        return WorkerConfig(
            listen_fd=listener.fileno(),
            settings=settings_values(runtime.settings),
            database_url=runtime.engine.url.render_as_string(hide_password=False),
            escrow=runtime.escrow.address,
            chain_url=chain_url,
            chain_token=chain_token,
            embedded=embedded,
            internal_url=self._internal.url,
            internal_token=self._internal.token,
            supplier_keys=["0x" + bytes(a.key).hex() for a in runtime.suppliers],
            domain=self.domain,
            rpc_url=runtime.advertised_rpc(self.public_url),
            log_level=self.log_level,
        )

    def _spawn(self, listener: socket.socket) -> bool:
        """Start an API worker, hand it its config, and watch for its exit.

        Returns False when the process could not even be started (out of processes or
        memory); a ``spawn_failed`` event then schedules the next try.
        """
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(PACKAGE_ROOT) + (os.pathsep + path if path else "")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                stdin=subprocess.PIPE,
                pass_fds=(listener.fileno(),),
                env=env,
                # Its own session: a Ctrl-C in the terminal reaches the supervisor only, which
                # stops the child in order.
                start_new_session=True,
            )
        except OSError as exc:
            self._child = None
            self._events.put(("spawn_failed", exc.strerror or type(exc).__name__))
            return False
        self._child = _Child(process=process, started=time.monotonic())
        assert process.stdin is not None
        try:
            process.stdin.write(self._config(listener).to_line())
            process.stdin.flush()
        except OSError:  # it died already; its exit is reported below
            log.warning("API worker (pid %d) exited before reading its config", process.pid)

        def wait() -> None:
            self._events.put(("exit", (process, process.wait())))

        threading.Thread(target=wait, name=f"kameng-wait-{process.pid}", daemon=True).start()
        log.info("API worker started (pid %d)", process.pid)
        return True

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        process = child.process
        if process.poll() is None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("API worker (pid %d) did not stop; killing it", process.pid)
                process.kill()
                process.wait()
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        log.info("API worker (pid %d) stopped (%s)", process.pid, describe_exit(process.returncode))
