"""The arbiter's dispute queue: ``GET /arbiter/disputes``, oldest first, with deadlines."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from backend.api import queries
from backend.api.deps import ContextDep, CurrentArbiter, PageLimit, SessionDep
from backend.schemas import DisputePublic, ErrorPublic, EvidencePublic

router = APIRouter(prefix="/arbiter", tags=["arbiter"])


@router.get(
    "/disputes",
    response_model=list[DisputePublic],
    responses={
        401: {"model": ErrorPublic},
        403: {"model": ErrorPublic},
        503: {"model": ErrorPublic},
    },
)
def dispute_queue(
    ctx: ContextDep,
    session: SessionDep,
    arbiter: CurrentArbiter,  # noqa: ARG001 - the dependency is the access check
    include_ruled: Annotated[bool, Query(description="Also list disputes already ruled.")] = False,
    limit: PageLimit = 200,
) -> list[DisputePublic]:
    """Open disputes, oldest first, with the arbitration deadline and the time left (in chain
    time), the order they are about, and every piece of evidence with the log it came from.
    Arbiters only."""
    rows = queries.disputes(session, include_ruled=include_ruled, limit=limit)
    ev = queries.evidence(session, order_ids=[int(d.order_id) for d, _ in rows])
    now = queries.chain_time(session, chain_id=ctx.auth.chain_id) or int(time.time())
    out = []
    for d, o in rows:
        left = int(d.arbitration_deadline) - now
        out.append(
            DisputePublic(
                order_id=int(d.order_id),
                listing_id=int(o.listing_id),
                buyer=o.buyer,
                supplier=o.supplier,
                token=o.token,
                amount=int(o.amount),
                bond=int(o.bond),
                opened_at=int(d.opened_at),
                arbitration_deadline=int(d.arbitration_deadline),
                seconds_left=left,
                overdue=left < 0 and not d.ruled,
                ruled=bool(d.ruled),
                evidence_uri=d.evidence_uri,
                evidence_hash=d.evidence_hash,
                opened_tx=d.tx_hash,
                opened_block=int(d.block_number),
                evidence=[
                    EvidencePublic(
                        party=e.party,
                        uri=e.uri,
                        evidence_hash=e.evidence_hash,
                        block_number=int(e.block_number),
                        tx_hash=e.tx_hash,
                    )
                    for e in ev.get(int(d.order_id), [])
                ],
                buyer_bps=d.buyer_bps,
                slash_bps=d.slash_bps,
                arbiter=d.arbiter,
            )
        )
    return out
