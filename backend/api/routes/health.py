"""``GET /health`` and ``GET /chain``: is everything up, and which chain is this."""

from __future__ import annotations

from fastapi import APIRouter, Response

from backend.api import queries
from backend.api.deps import ContextDep, SessionDep
from backend.api.schemas import ChainInfoPublic, ErrorPublic, HealthPublic

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": ErrorPublic, "description": "The node or the database is down."}},
)
def health(ctx: ContextDep, session: SessionDep, response: Response) -> HealthPublic:
    """Ask the node for its head and the database for the mirror's checkpoint.

    Answers 503 with ``Retry-After`` when either does not answer.
    """
    head = int(ctx.chain.w3.eth.block_number)
    indexed = queries.indexed_block(
        session, chain_id=ctx.auth.chain_id, contract=ctx.escrow.address
    )
    response.headers["Cache-Control"] = "no-store"
    return HealthPublic(
        status="ok",
        chain_id=ctx.auth.chain_id,
        escrow=ctx.escrow.address,
        head_block=head,
        indexed_block=indexed,
        lag_blocks=None if indexed is None else max(0, head - indexed),
    )


@router.get("/chain", response_model=ChainInfoPublic)
def chain_info(ctx: ContextDep) -> ChainInfoPublic:
    """The chain id, the escrow's address, and a JSON-RPC URL when this server exposes one."""
    return ChainInfoPublic(
        chain_id=ctx.auth.chain_id,
        escrow=ctx.escrow.address,
        rpc_url=ctx.rpc_url,
        embedded=ctx.embedded,
    )
