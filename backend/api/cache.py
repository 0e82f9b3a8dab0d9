"""What the API lets caches keep, and its own cache of the public catalog (docs/API.md, Caching).

`CacheRules` is ASGI middleware that does two things:

- it says in ``Cache-Control`` what a cache may keep: the public catalog and ``GET /chain``
  ``public, max-age=1`` (the same answer for everyone, at most one block old), and everything a
  signed-in wallet reads (its orders, their releases, its dashboard, its session)
  ``private, no-store``: no cache, not even the browser's, ever answers for it;
- it answers the public catalog's GETs (``/catalog/...``) from memory while the indexer's
  mirror has not moved. Every catalog answer is a function of the mirror alone, and the mirror
  moves only with its checkpoint (the indexer writes the checkpoint in the same transaction as
  the rows it covers, a reorg's rollback included), so a stored answer is keyed by the
  checkpoint it was computed at or after: the first request after the mirror moves computes
  afresh. An answer from this cache is therefore never older than the mirror the request
  found; it costs one primary-key read of the checkpoint instead of the route's queries and
  serialisation. ``GET /chain`` is the server's configuration and is kept for good.

Only 200 answers to a GET are stored, those of the newest checkpoint only, at most
`MAX_ENTRIES` (the oldest dropped first). Any
database error while reading the checkpoint passes the request on to the route, which answers
as it would without the cache (503 when the database is down).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from indexer import models as m

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Paths whose answer is the same for everyone and follows the mirror: stored here (the
#: catalog, and the resellers' shops, which are catalog listings at a shop's prices).
CATALOG_PREFIX = ("/catalog/", "/shops/")
#: The server's chain and escrow: the same for the process's life.
CHAIN_PATH = "/chain"
#: What shared caches and browsers may do with those (one block, on a 1-s chain).
PUBLIC = b"public, max-age=1"
#: Paths that answer for a signed-in wallet: never stored anywhere.
PRIVATE_PREFIXES = ("/buyer/", "/supplier/", "/auth/", "/arbiter/", "/admin/")
PRIVATE = b"private, no-store"
#: Most answers kept (distinct paths and queries of the catalog).
MAX_ENTRIES = 512

_Key = tuple[str, bytes, tuple[tuple[int, str, str], ...]]


class CacheRules:
    """``Cache-Control`` on the API's answers, and the catalog answered from memory."""

    def __init__(self, app: ASGIApp, api: FastAPI, max_entries: int = MAX_ENTRIES) -> None:
        """Wrap `app`; `api.state.ctx` is the app's context (its engine and chain)."""
        self.app = app
        self.api = api
        self.max_entries = max_entries
        self._stored: OrderedDict[_Key, tuple[list[tuple[bytes, bytes]], bytes]] = OrderedDict()
        self._chain: tuple[list[tuple[bytes, bytes]], bytes] | None = None
        self._at: tuple[tuple[int, str, str], ...] | None = None
        #: Answers served from memory, and computed by the route (for tests and curiosity).
        self.hits = 0
        self.misses = 0

    def checkpoint(self) -> tuple[tuple[int, str, str], ...]:
        """Where the mirror stands: each checkpoint row's block number, hash and contract."""
        ctx = self.api.state.ctx
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                select(m.Checkpoint.block_number, m.Checkpoint.block_hash, m.Checkpoint.contract)
                .where(m.Checkpoint.chain_id == ctx.auth.chain_id)
                .order_by(m.Checkpoint.contract)
            ).all()
        return tuple((int(n), str(h), str(c)) for n, h, c in rows)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer from memory, or pass on and label (and maybe keep) the answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] != "GET":
            rule = PRIVATE if path.startswith(PRIVATE_PREFIXES) else None
            await self.app(scope, receive, _labelled(send, rule))
            return
        if path == CHAIN_PATH:
            if self._chain is not None:
                await _replay(send, *self._chain)
                return
            await self.app(scope, receive, self._keep(send, None))
            return
        if not path.startswith(CATALOG_PREFIX):
            rule = PRIVATE if path.startswith(PRIVATE_PREFIXES) else None
            await self.app(scope, receive, _labelled(send, rule))
            return
        try:
            at = await run_in_threadpool(self.checkpoint)
        except SQLAlchemyError:
            await self.app(scope, receive, _labelled(send, PUBLIC))
            return
        key: _Key = (path, scope.get("query_string", b""), at)
        stored = self._stored.get(key)
        if stored is not None:
            self.hits += 1
            await _replay(send, *stored)
            return
        self.misses += 1
        await self.app(scope, receive, self._keep(send, key))

    def _keep(self, send: Send, key: _Key | None) -> Send:
        """A `send` that labels the answer public and stores it if it is a 200."""
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()
        status = 0

        async def keeping(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = _with_rule(list(message.get("headers", [])), PUBLIC)
                headers[:] = message["headers"]
            elif message["type"] == "http.response.body" and status == 200:
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, headers, bytes(body))
            await send(message)

        return keeping

    def _store(self, key: _Key | None, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if key is None:
            self._chain = (headers, body)
            return
        if key[2] != self._at:  # the mirror moved (or rolled back): older answers are done
            self._stored.clear()
            self._at = key[2]
        self._stored[key] = (headers, body)
        while len(self._stored) > self.max_entries:
            self._stored.popitem(last=False)


async def _replay(send: Send, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _with_rule(headers: list[tuple[bytes, bytes]], rule: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` with ``Cache-Control: rule`` unless the route set its own."""
    if any(name.lower() == b"cache-control" for name, _ in headers):
        return headers
    return [*headers, (b"cache-control", rule)]


def _labelled(send: Send, rule: bytes | None) -> Send:
    """A `send` that adds ``Cache-Control: rule`` to the answer (nothing when `rule` is None)."""
    if rule is None:
        return send

    async def labelling(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _with_rule(list(message.get("headers", [])), rule)
        await send(message)

    return labelling
