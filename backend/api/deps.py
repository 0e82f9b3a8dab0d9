"""FastAPI dependencies, as `Annotated` aliases: `ContextDep`, `SessionDep`, `CurrentWallet`...

A route asks for what it needs by type:

    def my_orders(session: SessionDep, wallet: CurrentWallet) -> list[OrderPublic]: ...

`CurrentWallet` accepts either a session token from SIWE (``Authorization: Bearer ...``) or a
one-off signed request: ``X-Kameng-Address``, ``X-Kameng-Timestamp`` and ``X-Kameng-Signature``,
an EIP-191 signature over `backend.auth.request_text` with the action ``"METHOD /path"``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from backend.auth import AuthError, SiweAuth, Wallet

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy import Engine
    from sqlalchemy.orm import sessionmaker

    from contracts.chain import Chain
    from contracts.client import EscrowClient

#: How long an arbiter-role lookup is cached.
ROLE_CACHE_S = 30.0


@dataclass
class AppContext:
    """Everything the routes share: settings, database, chain, auth.

    Attributes:
        settings: The backend's settings (`backend.config.Settings`).
        engine: The database engine.
        session_factory: Makes database sessions.
        chain: The chain connection.
        escrow: The escrow client.
        auth: SIWE and session tokens.
        suppliers: Supplier accounts this backend signs `commitBatch` for, by address.
        rpc_url: A JSON-RPC URL clients may use, when this server exposes one.
        upload_max_bytes: Size cap of a CSV upload.
        low_stock_threshold: Stock at or below which a listing is flagged.
    """

    settings: Any
    engine: Engine
    session_factory: sessionmaker[Session]
    chain: Chain
    escrow: EscrowClient
    auth: SiweAuth
    suppliers: dict[str, LocalAccount] = field(default_factory=dict)
    rpc_url: str | None = None
    upload_max_bytes: int = 4 * 1024 * 1024
    low_stock_threshold: int = 20
    _roles: dict[str, tuple[float, bool]] = field(default_factory=dict, repr=False)
    _roles_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def embedded(self) -> bool:
        """Whether the chain is the in-process eth-tester chain."""
        return self.chain.kind == "embedded"

    def is_arbiter(self, address: str) -> bool:
        """Whether `address` holds ARBITER_ROLE on the escrow (cached for 30 s).

        Raises:
            ChainError: the node did not answer.
        """
        now = time.monotonic()
        with self._roles_lock:
            hit = self._roles.get(address)
        if hit is not None and now - hit[0] < ROLE_CACHE_S:
            return hit[1]
        role = self.escrow.call("ARBITER_ROLE")
        value = bool(self.escrow.call("hasRole", role, address))
        with self._roles_lock:
            self._roles[address] = (now, value)
        return value


def get_context(request: Request) -> AppContext:
    """The app's context, set by `create_app`."""
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """A database session for one request, closed afterwards."""
    with ctx.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /auth/verify.")


def get_wallet(
    request: Request,
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_kameng_address: Annotated[
        str | None, Header(description="Signed request: the signer's address.")
    ] = None,
    x_kameng_timestamp: Annotated[
        int | None, Header(description="Signed request: Unix time of the signature.")
    ] = None,
    x_kameng_signature: Annotated[
        str | None,
        Header(
            description="Signed request: EIP-191 signature over the request text "
            "(action `METHOD /path`)."
        ),
    ] = None,
) -> Wallet:
    """The authenticated wallet, from a session token or a signed request.

    Raises:
        AuthError: neither is present, or the one present is invalid.
    """
    if credentials is not None:
        return ctx.auth.authenticate(credentials.credentials)
    if x_kameng_address and x_kameng_signature and x_kameng_timestamp is not None:
        return ctx.auth.verify_request_signature(
            action=f"{request.method} {request.url.path}",
            escrow=ctx.escrow.address,
            address=x_kameng_address,
            timestamp=x_kameng_timestamp,
            signature=x_kameng_signature,
        )
    raise AuthError(
        "not signed in: send `Authorization: Bearer <token>` (from POST /auth/nonce, then "
        "POST /auth/verify) or sign the request with X-Kameng-Address/-Timestamp/-Signature"
    )


CurrentWallet = Annotated[Wallet, Depends(get_wallet)]


def get_arbiter(ctx: ContextDep, wallet: CurrentWallet) -> Wallet:
    """The authenticated wallet, if it holds ARBITER_ROLE.

    Raises:
        Forbidden: it does not.
    """
    from backend.api.errors import Forbidden

    if not ctx.is_arbiter(wallet.address):
        raise Forbidden(
            f"{wallet.address} does not hold ARBITER_ROLE on escrow {ctx.escrow.address}; "
            "sign in with an arbiter's wallet"
        )
    return wallet


CurrentArbiter = Annotated[Wallet, Depends(get_arbiter)]


__all__ = [
    "AppContext",
    "ContextDep",
    "CurrentArbiter",
    "CurrentWallet",
    "SessionDep",
    "get_context",
    "get_session",
    "get_wallet",
]
