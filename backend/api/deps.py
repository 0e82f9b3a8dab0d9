"""FastAPI dependencies, as `Annotated` aliases: `ContextDep`, `SessionDep`, `CurrentWallet`...

A route asks for what it needs by type:

    def my_orders(session: SessionDep, wallet: CurrentWallet) -> list[OrderPublic]: ...

Every integer in a path or a query string is one of the ranged types below (`ListingIdPath`,
`OrderIdPath`, `Offset`, `OrderStates`, `CatalogLimit`, `PageLimit`): each declares its range
in the OpenAPI schema (``minimum``, ``maximum``) and refuses a value outside it with 422
``must be an integer from LOW to HIGH``, before the value reaches SQL or the chain.

`CurrentWallet` accepts either a session token from SIWE (``Authorization: Bearer ...``) or a
one-off signed request: ``X-Kameng-Address``, ``X-Kameng-Timestamp``, ``X-Kameng-Nonce`` and
``X-Kameng-Signature``, an EIP-191 signature over `backend.auth.request_text`, which binds the
method, the path, the query string and the body's SHA-256 (the body is read, up to the upload
cap, before the signature is checked).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from backend.api.ratelimit import DEFAULT_LIMITS, RateLimiter
from backend.auth import AuthError, SignedRequest, SiweAuth, Wallet
from backend.errors import UploadTooLarge
from backend.evidence.cache import BundleCache

if TYPE_CHECKING:
    from collections.abc import Callable

    from eth_account.signers.local import LocalAccount
    from sqlalchemy import Engine
    from sqlalchemy.orm import sessionmaker

    from backend.workers import WorkerReport
    from contracts.chain import Chain
    from contracts.client import EscrowClient

#: How long an arbiter-role lookup is cached.
ROLE_CACHE_S = 30.0

# ------------------------------------------------------------------ ranged integers

#: Largest signed 64-bit integer: SQL's BIGINT, which holds the mirror's listing ids and an
#: OFFSET. The escrow counts listings from 1, so no listing id reaches it.
SQL_BIGINT_MAX = 2**63 - 1
#: Largest order id: ``listingId << 32 | firstIndex`` with the largest listing id.
ORDER_ID_MAX = (SQL_BIGINT_MAX << 32) | 0xFFFFFFFF
#: Range of `contracts.encoding.OrderState` (None = 0 ... Resolved = 6).
ORDER_STATE_MAX = 6


#: What a path or query integer may look like: ASCII digits, optionally after a minus sign.
_DECIMAL = re.compile(r"-?[0-9]+")


def int_range(low: int, high: int) -> WrapValidator:
    """A validator that refuses anything but an integer in ``[low, high]``, naming the range.

    Text that is no integer (``abc``, ``1.5``) or too long to be one gets the same answer as a
    number out of range: ``must be an integer from LOW to HIGH``. Only plain decimal text is
    an integer: ``1.0``, ``1e3``, ``+1``, ``1_0`` and `` 1``, which a lax parser would read, are
    refused too.

    Args:
        low: The smallest value accepted.
        high: The largest value accepted.
    """

    def refuse() -> PydanticCustomError:
        return PydanticCustomError(
            "int_range", "must be an integer from {low} to {high}", {"low": low, "high": high}
        )

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> int:
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise refuse()
        try:
            number: int = handler(value)
        except ValidationError as exc:
            raise refuse() from exc
        if not low <= number <= high:
            raise refuse()
        return number

    return WrapValidator(check)


def _schema(low: int, high: int) -> dict[str, Any]:
    """The range as OpenAPI states it."""
    return {"minimum": low, "maximum": high}


ListingIdPath = Annotated[
    int,
    Path(
        description=f"The listing's id, 1 to {SQL_BIGINT_MAX}.",
        json_schema_extra=_schema(1, SQL_BIGINT_MAX),
    ),
    int_range(1, SQL_BIGINT_MAX),
]
UploadIdPath = Annotated[
    int,
    Path(
        description=f"The upload's id, 1 to {SQL_BIGINT_MAX}.",
        json_schema_extra=_schema(1, SQL_BIGINT_MAX),
    ),
    int_range(1, SQL_BIGINT_MAX),
]
OrderIdPath = Annotated[
    int,
    Path(
        description=f"listingId << 32 | firstIndex: 0 to {ORDER_ID_MAX}.",
        json_schema_extra=_schema(0, ORDER_ID_MAX),
    ),
    int_range(0, ORDER_ID_MAX),
]
Offset = Annotated[
    int,
    Query(
        description=f"Rows to skip, 0 to {SQL_BIGINT_MAX}.",
        json_schema_extra=_schema(0, SQL_BIGINT_MAX),
    ),
    int_range(0, SQL_BIGINT_MAX),
]
CatalogLimit = Annotated[
    int,
    Query(description="Most rows to answer, 1 to 500.", json_schema_extra=_schema(1, 500)),
    int_range(1, 500),
]
PageLimit = Annotated[
    int,
    Query(description="Most rows to answer, 1 to 1000.", json_schema_extra=_schema(1, 1000)),
    int_range(1, 1000),
]
OrderStates = Annotated[
    list[
        Annotated[
            int,
            Field(json_schema_extra=_schema(0, ORDER_STATE_MAX)),
            int_range(0, ORDER_STATE_MAX),
        ]
    ]
    | None,
    Query(
        description=f"Only these OrderState values (0 to {ORDER_STATE_MAX}: None, Paid, "
        "Delivered, Disputed, Completed, Refunded, Resolved); repeat for several."
    ),
]


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
        low_stock_threshold: Stock at or below which a listing is flagged.
        workers: Reports the background workers' liveness for ``GET /health``
            (`backend.workers`); None when no worker runs beside this API.
        limiter: Rate limits of the expensive calls (`backend.api.ratelimit`).
        bundles: Evidence bundles already built, by order, head block and additions.
    """

    settings: Any
    engine: Engine
    session_factory: sessionmaker[Session]
    chain: Chain
    escrow: EscrowClient
    auth: SiweAuth
    suppliers: dict[str, LocalAccount] = field(default_factory=dict)
    rpc_url: str | None = None
    low_stock_threshold: int = 20
    workers: Callable[[], WorkerReport] | None = None
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(DEFAULT_LIMITS))
    bundles: BundleCache = field(default_factory=lambda: BundleCache())
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
        return self.has_role(address, "ARBITER_ROLE")

    def has_role(self, address: str, role: str) -> bool:
        """Whether `address` holds `role` (by name) on the escrow (cached for 30 s).

        Raises:
            ChainError: the node did not answer.
        """
        now = time.monotonic()
        key = f"{role}:{address}"
        with self._roles_lock:
            hit = self._roles.get(key)
        if hit is not None and now - hit[0] < ROLE_CACHE_S:
            return hit[1]
        value = bool(self.escrow.call("hasRole", self.escrow.call(role), address))
        with self._roles_lock:
            self._roles[key] = (now, value)
        return value


# The dependencies below are coroutines where they do no I/O: FastAPI runs a plain function
# dependency in its thread pool, and each trip there and back costs more than the work (the
# catalog and order routes are read-mostly and light; `kameng bench api` measures them).


async def get_context(request: Request) -> AppContext:
    """The app's context, set by `create_app`."""
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[Session]:
    """A database session for one request, closed afterwards in a worker thread (closing hands
    its connection back to the pool, which rolls it back).

    Making a session touches no database; its first query checks out a connection. The close
    gets a limiter of its own, as FastAPI gives a plain dependency's exit: behind the shared
    one it could wait for a thread while every thread waits for the connection it holds.
    """
    session = ctx.session_factory()
    try:
        yield session
    finally:
        await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /auth/verify.")


_signed_address = APIKeyHeader(
    name="X-Kameng-Address",
    scheme_name="SignedRequestAddress",
    description="Signed request: the signer's address (with the three headers below).",
    auto_error=False,
)
_signed_timestamp = APIKeyHeader(
    name="X-Kameng-Timestamp",
    scheme_name="SignedRequestTimestamp",
    description="Signed request: Unix time of the signature, in seconds (within 60 s of now).",
    auto_error=False,
)
_signed_nonce = APIKeyHeader(
    name="X-Kameng-Nonce",
    scheme_name="SignedRequestNonce",
    description="Signed request: 32 to 64 lowercase hex digits, never used before.",
    auto_error=False,
)
_signed_signature = APIKeyHeader(
    name="X-Kameng-Signature",
    scheme_name="SignedRequestSignature",
    description="Signed request: EIP-191 signature over the request text (docs/API.md).",
    auto_error=False,
)


async def read_body_capped(request: Request, cap: int) -> bytes:
    """The request body, refusing it as soon as it passes `cap` bytes; later reads of the body
    (``request.body()``, ``request.stream()``) get the same bytes.

    Raises:
        UploadTooLarge: the declared or actual size is over the cap.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise UploadTooLarge(int(declared), cap)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise UploadTooLarge(len(body), cap)
    request._body = bytes(body)  # Starlette's own cache: stream() and body() replay it
    return request._body


def _verify_signed(
    ctx: AppContext, signed: SignedRequest, address: str, stamp: int, nonce: str, signature: str
) -> Wallet:
    with ctx.session_factory() as session:
        return ctx.auth.verify_request_signature(
            session,
            request=signed,
            address=address,
            timestamp=stamp,
            nonce=nonce,
            signature=signature,
        )


def _authenticate(ctx: AppContext, token: str) -> Wallet:
    # Its own session, checked out and returned within this one call in the thread pool: a
    # connection held across thread-pool trips (the request's session, used here and again by
    # the route) can starve the pool under load, every thread waiting for a connection held
    # by a request that waits for a thread (kameng bench api: 30-s pool timeouts).
    with ctx.session_factory() as session:
        return ctx.auth.authenticate(token, session=session)


async def get_wallet(
    request: Request,
    ctx: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_kameng_address: Annotated[str | None, Depends(_signed_address)],
    x_kameng_timestamp: Annotated[str | None, Depends(_signed_timestamp)],
    x_kameng_nonce: Annotated[str | None, Depends(_signed_nonce)],
    x_kameng_signature: Annotated[str | None, Depends(_signed_signature)],
) -> Wallet:
    """The authenticated wallet, from a session token or a signed request.

    The signed-request headers are documented as security schemes, not parameters: they are
    credentials, and a malformed one is answered 401 like a bad token. The token's revocation
    and the request's nonce are checked in the database, off the event loop.

    Raises:
        AuthError: neither is present, or the one present is invalid, revoked or replayed.
    """
    if credentials is not None:
        return await run_in_threadpool(_authenticate, ctx, credentials.credentials)
    if x_kameng_address and x_kameng_signature and x_kameng_timestamp is not None:
        stamp = x_kameng_timestamp
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise AuthError("X-Kameng-Timestamp must be the signature's Unix time in seconds")
        if not x_kameng_nonce:
            raise AuthError(
                "X-Kameng-Nonce is missing: a signed request carries a fresh nonce "
                "(32 to 64 lowercase hex digits) and signs it with the request (docs/API.md)"
            )
        cap = int(ctx.settings.max_upload_bytes)
        signed = SignedRequest(
            method=request.method,
            path=request.url.path,
            query=request.scope.get("query_string", b"").decode("latin-1"),
            body=await read_body_capped(request, cap),
        )
        return await run_in_threadpool(
            _verify_signed,
            ctx,
            signed,
            x_kameng_address,
            int(stamp),
            x_kameng_nonce,
            x_kameng_signature,
        )
    raise AuthError(
        "not signed in: send `Authorization: Bearer <token>` (from POST /auth/nonce, then "
        "POST /auth/verify) or sign the request with X-Kameng-Address/-Timestamp/-Nonce/"
        "-Signature"
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

#: The roles that see the operator's console: the admin, rights admins and pausers.
OPERATOR_ROLES = ("DEFAULT_ADMIN_ROLE", "RIGHTS_ADMIN_ROLE", "PAUSER_ROLE")


def get_operator(ctx: ContextDep, wallet: CurrentWallet) -> Wallet:
    """The authenticated wallet, if it holds one of `OPERATOR_ROLES`.

    Raises:
        Forbidden: it holds none.
    """
    from backend.api.errors import Forbidden

    if not any(ctx.has_role(wallet.address, role) for role in OPERATOR_ROLES):
        raise Forbidden(
            f"{wallet.address} holds none of {', '.join(OPERATOR_ROLES)} on escrow "
            f"{ctx.escrow.address}; sign in with the operator's or the rights admin's wallet"
        )
    return wallet


CurrentOperator = Annotated[Wallet, Depends(get_operator)]


__all__ = [
    "ORDER_ID_MAX",
    "SQL_BIGINT_MAX",
    "AppContext",
    "CatalogLimit",
    "ContextDep",
    "CurrentArbiter",
    "CurrentOperator",
    "CurrentWallet",
    "ListingIdPath",
    "Offset",
    "OrderIdPath",
    "OrderStates",
    "PageLimit",
    "SessionDep",
    "int_range",
    "get_context",
    "get_session",
    "get_wallet",
    "read_body_capped",
]
