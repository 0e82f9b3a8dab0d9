"""The API worker of `kameng serve`: uvicorn in a child process of the supervisor.

Started by `backend.supervisor` as ``python -m backend.api_worker``. Everything it needs comes
as one JSON line on its stdin (`WorkerConfig`): settings with their secrets, the suppliers'
keys, the database URL, how to reach the chain, and the number of the listening socket it
inherits. Nothing secret is on its command line or in its environment.

It serves on the inherited socket, so the port stays the same across restarts. It reaches the
embedded chain, and the supervisor's worker report for ``GET /health``, through the supervisor's
loopback server (`backend.internal_rpc`). Its stdin stays open: when the supervisor closes it,
or dies, the worker shuts down.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.config import Settings

log = logging.getLogger("kameng.api_worker")

#: Seconds the worker waits for open requests when asked to stop.
GRACEFUL_SHUTDOWN_S = 10


@dataclass
class WorkerConfig:
    """What the supervisor hands its API worker (through the worker's stdin, never argv).

    Attributes:
        listen_fd: The listening socket's file descriptor, inherited from the supervisor.
        settings: The backend's settings as plain values, secrets included.
        database_url: The database, password included.
        escrow: The escrow's address.
        chain_url: JSON-RPC of the chain: the supervisor's internal server (embedded chain) or
            the node.
        chain_token: The bearer token the chain URL wants (the internal server's), if any.
        embedded: The chain is the supervisor's embedded chain (``POST /rpc`` is served).
        internal_url: The supervisor's internal server.
        internal_token: Its bearer token.
        supplier_keys: Private keys (hex) of the suppliers whose uploads this API commits.
        domain: The SIWE domain.
        rpc_url: The JSON-RPC URL advertised at ``GET /chain``.
        log_level: uvicorn's log level.
    """

    listen_fd: int
    settings: dict[str, Any]
    database_url: str
    escrow: str
    chain_url: str
    internal_url: str
    internal_token: str
    chain_token: str | None = None
    embedded: bool = False
    supplier_keys: list[str] = field(default_factory=list)
    domain: str = "localhost"
    rpc_url: str | None = None
    log_level: str = "info"

    def to_line(self) -> bytes:
        """The config as one JSON line."""
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> WorkerConfig:
        """Read `to_line`'s output.

        Raises:
            ValueError: the line is not such a config.
        """
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("the worker config must be a JSON object")
        return cls(**data)


def settings_values(settings: Settings) -> dict[str, Any]:
    """`settings` as plain JSON values, secrets revealed (for the worker's stdin only)."""
    from pydantic import SecretStr

    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return out


def build_app(config: WorkerConfig) -> FastAPI:
    """The API the worker serves, wired to the supervisor's chain and worker report."""
    from eth_account import Account

    from backend.api import create_app
    from backend.config import Settings
    from backend.db import make_engine, session_factory
    from backend.internal_rpc import ForwardingRpcProxy, fetch_report
    from contracts.chain import rpc_chain
    from contracts.client import EscrowClient

    headers = {"Authorization": f"Bearer {config.chain_token}"} if config.chain_token else None
    chain = rpc_chain(config.chain_url, headers=headers, embedded_upstream=config.embedded)
    engine = make_engine(config.database_url)
    app = create_app(
        Settings(**config.settings),
        chain=chain,
        escrow=EscrowClient(chain, config.escrow),
        engine=engine,
        session_factory=session_factory(engine),
        suppliers=[Account.from_key(key) for key in config.supplier_keys],
        domain=config.domain,
        rpc_url=config.rpc_url,
        expose_rpc=config.embedded,
    )
    if config.embedded:
        app.state.rpc_proxy = ForwardingRpcProxy(config.internal_url, config.internal_token)
    url, token = config.internal_url, config.internal_token
    app.state.ctx.workers = lambda: fetch_report(url, token)
    return app


def serve(config: WorkerConfig) -> None:
    """Serve the API on the inherited socket until stdin closes or a signal says stop."""
    import uvicorn

    sock = socket.socket(fileno=config.listen_fd)
    app = build_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=config.log_level,
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )

    def watch_supervisor() -> None:
        # EOF: the supervisor closed the pipe to stop us, or it is gone.
        sys.stdin.buffer.read()
        server.should_exit = True

    threading.Thread(target=watch_supervisor, name="kameng-watch", daemon=True).start()
    server.run(sockets=[sock])


def main() -> None:
    """Entry point: read the config from stdin, then serve."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per /workers call otherwise
    line = sys.stdin.buffer.readline()
    if not line:
        raise SystemExit("kameng api worker: no config on stdin (it is started by kameng serve)")
    serve(WorkerConfig.from_line(line))


if __name__ == "__main__":
    main()
