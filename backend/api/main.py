"""The FastAPI app factory: `create_app(settings, chain=..., escrow=...)`."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from backend.api import errors, openapi
from backend.api.cache import CacheRules
from backend.api.deps import AppContext
from backend.api.middleware import AllowedMethods, BodyTimeout, JsonDepthLimit
from backend.api.ratelimit import DEFAULT_LIMITS, RateLimiter, scaled
from backend.api.routes import (
    admin,
    arbiter,
    attestations,
    buyer,
    catalog,
    evidence,
    health,
    notify,
    rpc,
    shop_names,
    supplier,
)
from backend.api.routes import auth as auth_routes
from backend.auth import SiweAuth
from backend.db import make_engine
from backend.limits import pin_recursion_limit

if TYPE_CHECKING:
    from collections.abc import Iterable

    from eth_account.signers.local import LocalAccount
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.chain import Chain
    from contracts.client import EscrowClient

DESCRIPTION = """
kameng's backend: the catalog, buyers' orders and sealed releases, suppliers' dashboards and
CSV uploads, and the arbiter's dispute queue. Chain facts come from the indexer's SQL mirror.

**Auth.** Sign-In with Ethereum: `POST /auth/nonce`, sign the EIP-4361 message with your
wallet, `POST /auth/verify`, then send `Authorization: Bearer <token>`. A buyer may instead sign
a single request (`X-Kameng-Address`, `X-Kameng-Timestamp`, `X-Kameng-Signature`).

**Errors.** 4xx answers say what to fix; 503 answers carry `Retry-After` when the database or
the RPC node is down.

**Limits.** JSON bodies (and the JSON inside them, such as an evidence bundle) nest at most
64 levels of arrays and objects, else 422. Path and query integers have the range their schema
states (`minimum`, `maximum`); out of it, 422 naming the range.
"""


def session_secret(settings: Settings) -> bytes:
    """The key of session tokens, derived from the session key (``KAMENG_SESSION_KEY``), which
    is separate from the vault's master key: a leaked session key mints tokens but opens no
    vault, and rotating it only signs everyone out."""
    return hmac.new(
        settings.session_key_bytes, b"kameng.api.session-tokens.v2", hashlib.sha256
    ).digest()


def create_app(
    settings: Settings,
    *,
    chain: Chain,
    escrow: EscrowClient,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    suppliers: Iterable[LocalAccount] = (),
    domain: str = "localhost",
    rpc_url: str | None = None,
    expose_rpc: bool | None = None,
    low_stock_threshold: int = 20,
    auth: SiweAuth | None = None,
    web: bool = True,
) -> FastAPI:
    """Build the API.

    Args:
        settings: The backend's settings (database URL, master key, upload cap...).
        chain: The chain connection.
        escrow: The escrow client.
        engine: The database engine; made from ``settings.database_url`` if None.
        session_factory: Makes sessions; made from the engine if None.
        suppliers: Supplier accounts whose uploads this backend commits on-chain.
        domain: The SIWE domain clients must sign for (host[:port] of this API).
        rpc_url: A JSON-RPC URL to advertise at ``GET /chain``.
        expose_rpc: Mount ``POST /rpc`` for the chain (default: when the chain is embedded).
        low_stock_threshold: Stock at or below which a listing is flagged on the dashboard.
        auth: A ready SIWE service (tests pass one with their own clock).
        web: Serve the built web front-end (``backend/web/dist``) at ``/`` when it exists.
    """
    if engine is None:
        engine = make_engine(settings.database_url)
    if session_factory is None:
        session_factory = sessionmaker(engine, expire_on_commit=False)
    chain_id = chain.chain_id
    if auth is None:
        auth = SiweAuth(
            domain=domain,
            chain_id=chain_id,
            escrow=escrow.address,
            secret=session_secret(settings),
        )
    if expose_rpc is None:
        expose_rpc = chain.kind == "embedded"
    ctx = AppContext(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        chain=chain,
        escrow=escrow,
        auth=auth,
        suppliers={a.address: a for a in suppliers},
        rpc_url=rpc_url,
        low_stock_threshold=low_stock_threshold,
        limiter=RateLimiter(scaled(DEFAULT_LIMITS, settings.rate_limit_scale)),
    )
    app = FastAPI(
        title="kameng",
        version="0.1.0",
        summary="Escrowed payment, committed card codes, encrypted delivery.",
        description=DESCRIPTION,
    )
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(AllowedMethods, api=app)
    # Before the routes and the 405 check: the catalog's stored answers skip both.
    app.add_middleware(CacheRules, api=app)
    # Outermost: every body read below it, the depth check's included, is timed.
    app.add_middleware(BodyTimeout, idle_s=float(getattr(settings, "body_timeout_seconds", 30.0)))
    openapi.install(app)
    for module in (
        health,
        auth_routes,
        catalog,
        buyer,
        supplier,
        arbiter,
        evidence,
        notify,
        admin,
        attestations,
        shop_names,
    ):
        app.include_router(module.router)
    if expose_rpc:
        from backend.rpc_proxy import JsonRpcProxy

        app.state.rpc_proxy = JsonRpcProxy(chain)
        app.include_router(rpc.router)
    if web:
        _mount_web(app)
    # Everything the app runs is imported now: undo what a dependency did to the recursion
    # limit at import (py_ecc raises it to 100,000), so that Python raises RecursionError
    # before the C stack overflows (backend.limits).
    pin_recursion_limit()
    return app


def _mount_web(app: FastAPI) -> None:
    """Mount the front-end after every API route, if it has been built."""
    try:
        from backend.web import DIST, mount_web
    except ImportError:  # the front-end package is optional
        return
    if (DIST / "index.html").is_file():
        mount_web(app)
