"""The operator's console (issue 14): the marketplace at a glance and the audit log of every
operator action, for holders of the admin, rights-admin or pauser role (signed in with SIWE)."""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Query
from sqlalchemy import case, func, select

from backend.api import queries
from backend.api.convert import state_name
from backend.api.deps import SQL_BIGINT_MAX, ContextDep, CurrentOperator, SessionDep, int_range
from backend.schemas import (
    AuditEntryPublic,
    BondWatchPublic,
    ErrorPublic,
    OverviewPublic,
    TokenVolumePublic,
)
from contracts.encoding import OrderState
from indexer import models as m

router = APIRouter(prefix="/admin", tags=["operator"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "Not signed in."},
    403: {"model": ErrorPublic, "description": "Holds no operator role."},
}

#: The escrow's events that record an operator's action.
AUDITED = (
    "RoleGranted",
    "RoleRevoked",
    "DefaultAdminTransferScheduled",
    "DefaultAdminTransferCanceled",
    "SkuAuthorized",
    "ConfigUpdated",
    "TokenAllowed",
    "Paused",
    "Unpaused",
    "FeesWithdrawn",
)
STUCK_BLOCKS = 10
DAY = 86_400


@router.get("/overview", response_model=OverviewPublic, responses=_ERRORS)
def overview(ctx: ContextDep, session: SessionDep, _who: CurrentOperator) -> OverviewPublic:
    """Volume, orders by state, disputes and their age, the delivery agent's and the indexer's
    lag, suppliers near their bond limit, dead notifications and stuck transactions."""
    from backend.gateway.models import ChainTx, TxState
    from backend.notify.models import DEAD, OutboxMessage

    chain_id = ctx.auth.chain_id
    now = queries.chain_time(session, chain_id=chain_id)
    mirror = queries.indexed_block(session, chain_id=chain_id, contract=ctx.escrow.address)
    try:
        head: int | None = int(ctx.chain.w3.eth.block_number)
    except Exception:  # noqa: BLE001 - the overview still answers with the node down
        head = None
    day_ago = (now or 0) - DAY
    volume = [
        TokenVolumePublic(
            token=token,
            orders=int(n),
            amount=int(total or 0),
            orders_24h=int(n_day or 0),
            amount_24h=int(total_day or 0),
        )
        for token, n, total, n_day, total_day in session.execute(
            select(
                m.Order.token,
                func.count(),
                func.sum(m.Order.amount),
                func.sum(case((m.Order.paid_at >= day_ago, 1), else_=0)),
                func.sum(case((m.Order.paid_at >= day_ago, m.Order.amount), else_=0)),
            ).group_by(m.Order.token)
        ).all()
    ]
    by_state = {
        state_name(int(state)): int(n)
        for state, n in session.execute(
            select(m.Order.state, func.count()).group_by(m.Order.state)
        ).all()
    }
    open_rows = session.execute(
        select(func.count(), func.min(m.Dispute.opened_at)).where(m.Dispute.ruled.is_(False))
    ).one()
    past = session.scalar(
        select(func.count()).where(
            m.Dispute.ruled.is_(False), m.Dispute.arbitration_deadline < (now or 0)
        )
    )
    waiting = session.execute(
        select(func.count(), func.min(m.Order.paid_at)).where(m.Order.state == int(OrderState.PAID))
    ).one()
    low = [
        BondWatchPublic(
            supplier=b.supplier, token=b.token, free=int(b.free), reserved=int(b.reserved)
        )
        for b in session.scalars(select(m.Bond).where(m.Bond.reserved > 0)).all()
        if int(b.free) * 10 < int(b.reserved)
    ]
    dead = session.scalar(select(func.count()).where(OutboxMessage.state == DEAD)) or 0
    stuck = (
        session.scalar(
            select(func.count()).where(
                ChainTx.state == TxState.SENT, ChainTx.sent_block < head - STUCK_BLOCKS
            )
        )
        if head is not None
        else 0
    ) or 0
    return OverviewPublic(
        chain_time=now,
        head_block=head,
        mirror_block=mirror,
        indexer_lag_blocks=None if head is None or mirror is None else max(0, head - mirror),
        volume=volume,
        orders_by_state=by_state,
        open_disputes=int(open_rows[0]),
        oldest_dispute_age_s=None if open_rows[1] is None or now is None else now - open_rows[1],
        disputes_past_deadline=int(past or 0),
        undelivered_orders=int(waiting[0]),
        oldest_undelivered_age_s=None if waiting[1] is None or now is None else now - waiting[1],
        low_bonds=low,
        dead_notifications=int(dead),
        stuck_transactions=int(stuck),
        allowed_tokens=list(
            session.scalars(
                select(m.AllowedToken.token)
                .where(m.AllowedToken.allowed.is_(True))
                .order_by(m.AllowedToken.token)
            )
        ),
    )


@router.get("/audit", response_model=list[AuditEntryPublic], responses=_ERRORS)
def audit(
    ctx: ContextDep,
    session: SessionDep,
    _who: CurrentOperator,
    limit: Annotated[
        int,
        Query(
            description="At most this many, 1 to 200.",
            json_schema_extra={"minimum": 1, "maximum": 200},
        ),
        int_range(1, 200),
    ] = 50,
    before_block: Annotated[
        int | None,
        Query(
            description="Only actions in blocks before this one (the next page).",
            json_schema_extra={"minimum": 0, "maximum": SQL_BIGINT_MAX},
        ),
        int_range(0, SQL_BIGINT_MAX),
    ] = None,
) -> list[AuditEntryPublic]:
    """Every operator action on the escrow, newest first: role changes, licences granted and
    revoked, settings, tokens, pause and fee withdrawals, with who sent each and its block."""
    query = select(m.RawEvent).where(m.RawEvent.name.in_(AUDITED))
    if before_block is not None:
        query = query.where(m.RawEvent.block_number < before_block)
    rows = session.scalars(
        query.order_by(m.RawEvent.block_number.desc(), m.RawEvent.log_index.desc()).limit(limit)
    ).all()
    stamps = dict(
        session.execute(
            select(m.Block.number, m.Block.timestamp).where(
                m.Block.number.in_({int(r.block_number) for r in rows})
            )
        ).all()
    )
    out: list[AuditEntryPublic] = []
    senders: dict[str, str | None] = {}
    for row in rows:
        decoded = ctx.escrow.codec.decode_log(
            {
                "topics": [t for t in row.topics.split(",") if t],
                "data": bytes(row.data),
                "address": row.address,
                "blockNumber": int(row.block_number),
                "blockHash": row.block_hash,
                "transactionHash": row.tx_hash,
                "logIndex": int(row.log_index),
            }
        )
        args = {} if decoded is None else {k: _text(v) for k, v in decoded.args.items()}
        if row.tx_hash not in senders:
            senders[row.tx_hash] = _sender(ctx, row.tx_hash)
        out.append(
            AuditEntryPublic(
                name=row.name,
                actor=senders[row.tx_hash],
                args=args,
                block_number=int(row.block_number),
                timestamp=stamps.get(int(row.block_number)),
                tx_hash=row.tx_hash,
            )
        )
    return out


def _text(value: Any) -> str:
    if isinstance(value, str) and is_address(value):
        return str(to_checksum_address(value))
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def _sender(ctx: Any, tx_hash: str) -> str | None:
    """Who sent a transaction (the node knows; None if it cannot say now)."""
    try:
        return str(ctx.chain.w3.eth.get_transaction(tx_hash)["from"])
    except Exception:  # noqa: BLE001 - the entry still shows, without its sender
        return None


__all__ = ["AUDITED", "router"]
