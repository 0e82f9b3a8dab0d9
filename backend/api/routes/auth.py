"""Sign-In with Ethereum: ``POST /auth/nonce``, ``POST /auth/verify``, ``GET /auth/me`` and
``POST /auth/logout``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from backend.api import queries
from backend.api.deps import ContextDep, CurrentWallet, SessionDep
from backend.auth import STATEMENT
from backend.schemas import (
    ErrorPublic,
    LogoutPublic,
    NoncePublic,
    SessionPublic,
    SiweVerify,
    WalletPublic,
)

router = APIRouter(prefix="/auth", tags=["auth"])


_LIMITED = {"model": ErrorPublic, "description": "Over the rate limit; see `Retry-After`."}


@router.post(
    "/nonce",
    response_model=NoncePublic,
    responses={429: _LIMITED, 503: {"model": ErrorPublic}},
)
def issue_nonce(request: Request, ctx: ContextDep, session: SessionDep) -> NoncePublic:
    """A fresh single-use nonce (128 random bits) and the fields your EIP-4361 message needs.

    It expires within 10 minutes. Sign a message naming this domain, this chain and the nonce,
    then send it to ``POST /auth/verify``. Rate limited per client address with
    ``POST /auth/verify`` (429 with ``Retry-After``).
    """
    ctx.limiter.check_client("auth-address", request, "sign-in requests from here")
    issued = ctx.auth.issue_nonce(session)
    return NoncePublic(
        nonce=issued.nonce,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        domain=ctx.auth.domain,
        chain_id=ctx.auth.chain_id,
        statement=STATEMENT,
    )


@router.post(
    "/verify",
    response_model=SessionPublic,
    responses={
        401: {"model": ErrorPublic, "description": "Refused, with the reason."},
        429: _LIMITED,
    },
)
def verify(
    body: SiweVerify, request: Request, ctx: ContextDep, session: SessionDep
) -> SessionPublic:
    """Check a signed EIP-4361 message and open a session.

    Refused with 401 and the reason for: a malformed message, a wrong domain or chain, an
    expired or not-yet-valid message, a bad signature, and an unknown, expired or already used
    nonce (a replayed message). A message of more than 24 lines, or with a line over 160
    characters, is refused unparsed. Rate limited per client address (429).
    """
    ctx.limiter.check_client("auth-address", request, "sign-in requests from here")
    token = ctx.auth.verify(session, body.message, body.signature)
    return SessionPublic(token=token.token, address=token.address, expires_at=token.expires_at)


@router.get("/me", response_model=WalletPublic, responses={401: {"model": ErrorPublic}})
def me(ctx: ContextDep, session: SessionDep, wallet: CurrentWallet) -> WalletPublic:
    """The signed-in wallet, whether it is an arbiter, and how many listings it supplies."""
    listings = queries.list_listings(session, supplier=wallet.address, limit=10_000)
    return WalletPublic(
        address=wallet.address,
        expires_at=wallet.expires_at,
        is_arbiter=ctx.is_arbiter(wallet.address),
        listings=len(listings),
    )


@router.post("/logout", response_model=LogoutPublic, responses={401: {"model": ErrorPublic}})
async def logout(
    ctx: ContextDep,
    wallet: CurrentWallet,
    everywhere: Annotated[
        bool,
        Query(description="Revoke every session of this wallet issued until now, not just this."),
    ] = False,
) -> LogoutPublic:
    """Sign out: the session token sent is refused from now on (with ``everywhere``, every
    token of the wallet issued until now, in every browser). Needs the session token itself,
    or, for ``everywhere``, a signed request by the wallet."""

    def revoke() -> None:
        with ctx.session_factory() as session:
            ctx.auth.revoke(session, wallet, everywhere=everywhere)

    await run_in_threadpool(revoke)
    return LogoutPublic(address=wallet.address, everywhere=everywhere)
