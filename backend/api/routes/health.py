"""``GET /health`` and ``GET /chain``: is everything up, and which chain is this."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from backend.api import queries
from backend.api.deps import ContextDep, SessionDep
from backend.api.errors import RETRY_AFTER_S
from backend.schemas import ChainInfoPublic, ErrorPublic, HealthDownPublic, HealthPublic
from backend.workers import WorkerReport

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={
        503: {
            "model": HealthDownPublic | ErrorPublic,
            "description": "A background worker (indexer, delivery agent) has died: the health "
            "fields with `workers` naming it and `detail`; or the node or the database is "
            "down: `detail` only, with `Retry-After`.",
        }
    },
)
def health(ctx: ContextDep, session: SessionDep, response: Response) -> HealthPublic | JSONResponse:
    """Ask the node for its head, the database for the mirror's checkpoint, and the workers
    whether they run.

    Answers 503 with ``Retry-After`` when the node or the database does not answer, and 503
    naming the dead workers when one has stopped (the API itself still answers).
    """
    head = int(ctx.chain.w3.eth.block_number)
    indexed = queries.indexed_block(
        session, chain_id=ctx.auth.chain_id, contract=ctx.escrow.address
    )
    report = ctx.workers() if ctx.workers is not None else WorkerReport()
    answer = HealthPublic(
        status="ok",
        chain_id=ctx.auth.chain_id,
        escrow=ctx.escrow.address,
        head_block=head,
        indexed_block=indexed,
        lag_blocks=None if indexed is None else max(0, head - indexed),
        workers=report.workers,
        api_restarts=report.api_restarts,
    )
    if report.dead:
        named = ", ".join(f"{name} ({report.workers[name]})" for name in report.dead)
        down = HealthDownPublic(
            **{**answer.model_dump(), "status": "degraded"}, detail=f"dead workers: {named}"
        )
        return JSONResponse(
            down.model_dump(mode="json"),
            status_code=503,
            headers={"Cache-Control": "no-store", "Retry-After": str(RETRY_AFTER_S)},
        )
    response.headers["Cache-Control"] = "no-store"
    return answer


@router.get("/chain", response_model=ChainInfoPublic)
def chain_info(ctx: ContextDep) -> ChainInfoPublic:
    """The chain id, the escrow's address, and a JSON-RPC URL when this server exposes one."""
    return ChainInfoPublic(
        chain_id=ctx.auth.chain_id,
        escrow=ctx.escrow.address,
        rpc_url=ctx.rpc_url,
        # Under `kameng serve`'s supervisor the API reaches the embedded chain over loopback.
        embedded=ctx.embedded or ctx.chain.embedded_upstream,
        domain=ctx.auth.domain,
        settle_batch=int(ctx.settings.keeper_batch_size),
    )
