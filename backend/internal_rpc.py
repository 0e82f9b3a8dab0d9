"""The loopback server through which the `kameng serve` supervisor serves its API worker.

The supervisor (`backend.supervisor`) keeps the chain, the indexer and the delivery agent; the
API runs in a child process. `InternalServer` listens on 127.0.0.1 at a random port and answers
only requests that carry its random bearer token (``Authorization: Bearer <token>``), which the
child learns through its stdin pipe (never its command line or environment):

- ``POST /``: JSON-RPC against the embedded chain, every method (the child is trusted; the
  public ``POST /rpc`` it serves keeps its own checks and forwards here through
  `ForwardingRpcProxy`, so outside callers get the same answers as in one process);
- ``GET /workers``: the supervisor's `WorkerReport` (indexer, agent, API restarts).

A request without the token gets 401 and nothing else; nothing here is logged per request.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx

from backend.limits import loads
from backend.workers import WorkerReport, dead

if TYPE_CHECKING:
    from collections.abc import Callable

    from backend.rpc_proxy import JsonRpcProxy

log = logging.getLogger("kameng.internal")

#: Largest request body the internal server reads (the public /rpc caps at 2 MiB before this).
MAX_BODY_BYTES = 16 * 1024 * 1024


class InternalServer:
    """A threaded HTTP server on loopback for one trusted client, the API worker."""

    def __init__(
        self, report: Callable[[], WorkerReport], proxy: JsonRpcProxy | None = None
    ) -> None:
        """Bind 127.0.0.1 on a free port with a fresh random token.

        Args:
            report: Makes the supervisor's worker report for ``GET /workers``.
            proxy: Answers JSON-RPC for ``POST /``; None when the chain is a real node (the
                child then talks to that node itself).
        """
        self.token = secrets.token_urlsafe(32)
        self.report = report
        self.proxy = proxy
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL (without the token)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this server's token."""
        expected = f"Bearer {self.token}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)

    def start(self) -> InternalServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="kameng-internal", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()


def _handler_for(server: InternalServer) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to `server`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the child's web3 session reuses connections

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Log nothing per request."""

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self) -> bool:
            if server.authorized(self.headers.get("Authorization")):
                return False
            self.close_connection = True
            self._answer(401, {"detail": "unauthorized"})
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            """``GET /workers``: the worker report."""
            if self._refused():
                return
            if self.path != "/workers":
                self._answer(404, {"detail": "not found"})
                return
            self._answer(200, server.report().as_json())

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            """``POST /``: one JSON-RPC request or a batch, against the embedded chain."""
            if self._refused():
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if self.path != "/" or server.proxy is None or not 0 < length <= MAX_BODY_BYTES:
                self.close_connection = True
                self._answer(400, {"detail": "POST / with a JSON-RPC body"})
                return
            raw = self.rfile.read(length)
            try:
                payload = loads(raw, "the JSON-RPC request")
            except ValueError:
                err = {"code": -32700, "message": "parse error"}
                self._answer(200, {"jsonrpc": "2.0", "id": None, "error": err})
                return
            self._answer(200, server.proxy.handle(payload))

    return Handler


class ForwardingRpcProxy:
    """The public ``POST /rpc`` of an API worker: each request goes to the supervisor's chain.

    It has `JsonRpcProxy.handle`'s shape, so the route uses it unchanged; the answer is the one
    the supervisor's `JsonRpcProxy` gives, as in one process.
    """

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        """Forward to the internal server at `url` with its `token`."""
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def handle(self, request: Any) -> Any:
        """Answer one request object or a batch, through the supervisor."""
        try:
            response = self._client.post("/", json=request)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("the supervisor's chain did not answer: %s", type(exc).__name__)
            rid = request.get("id") if isinstance(request, dict) else None
            err = {"code": -32000, "message": "the chain is unavailable; try again"}
            return {"jsonrpc": "2.0", "id": rid, "error": err}

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def fetch_report(url: str, token: str, timeout: float = 3.0) -> WorkerReport:
    """The supervisor's worker report; a ``supervisor`` worker marked dead if it does not
    answer."""
    try:
        response = httpx.get(
            url + "/workers", headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        response.raise_for_status()
        return WorkerReport.from_json(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        return WorkerReport(workers={"supervisor": dead(f"unreachable ({type(exc).__name__})")})
