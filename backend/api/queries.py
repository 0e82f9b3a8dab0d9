"""Reads of the indexer's mirror for the API: keyword-only functions, one query each where possible.

Every chain fact the API serves comes from here (the mirror tables of `indexer.models`), never
from the node, so the catalog and dashboards keep answering while the node is slow, and stay
consistent with the block the mirror has reached. Which sealed releases may be served is decided
here too (`servable_releases`): the vault's releases joined with the mirror's deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from backend.models import Release
from backend.release import LIVE_STATES
from contracts import order_rules
from contracts.encoding import OrderState
from indexer import models as m

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy.orm import Session

#: Order states whose payment the escrow still holds.
OPEN_STATES = (int(OrderState.PAID), int(OrderState.DELIVERED), int(OrderState.DISPUTED))


#: An authorization in force: the rights holder's attestation hash is not the zero of a
#: revocation.
_IN_FORCE = m.Authorization.attestation_hash != "0x" + "00" * 32


def _licensed() -> ColumnElement[bool]:
    """Whether a listing's supplier currently holds the rights holder's authorization for its
    sku (the escrow checks it when the listing is created; it can be revoked afterwards)."""
    return (
        select(m.Authorization.supplier)
        .where(
            m.Authorization.supplier == m.Listing.supplier,
            m.Authorization.sku == m.Listing.sku,
            _IN_FORCE,
        )
        .exists()
    )


def list_listings(
    session: Session,
    *,
    supplier: str | None = None,
    sku: str | None = None,
    active: bool | None = None,
    in_stock: bool = False,
    licensed: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[m.Listing]:
    """Listings, newest first, filtered (`licensed`: whether the licence is in force)."""
    q = select(m.Listing)
    if supplier is not None:
        q = q.where(m.Listing.supplier == supplier)
    if sku is not None:
        q = q.where(m.Listing.sku == sku)
    if active is not None:
        q = q.where(m.Listing.active.is_(active))
    if in_stock:
        q = q.where(m.Listing.committed > m.Listing.sold)
    if licensed is not None:
        q = q.where(_licensed() if licensed else ~_licensed())
    q = q.order_by(m.Listing.listing_id.desc()).limit(limit).offset(offset)
    return session.scalars(q).all()


def licensed_pairs(session: Session, *, listings: Iterable[m.Listing]) -> set[tuple[str, str]]:
    """The (supplier, sku) pairs of `listings` whose authorization is in force (not revoked)."""
    pairs = {(row.supplier, row.sku) for row in listings}
    if not pairs:
        return set()
    suppliers = sorted({p[0] for p in pairs})
    rows = session.execute(
        select(m.Authorization.supplier, m.Authorization.sku).where(
            m.Authorization.supplier.in_(suppliers), _IN_FORCE
        )
    ).all()
    return {(str(a), str(b)) for a, b in rows} & pairs


def get_listing(session: Session, *, listing_id: int) -> m.Listing | None:
    """One listing."""
    return session.get(m.Listing, listing_id)


def shop_listings(
    session: Session, *, reseller: str, limit: int = 100, offset: int = 0
) -> Sequence[tuple[m.ShopPrice, m.Listing]]:
    """The listings in a reseller's shop, by listing id, each with its shop price row. A shop
    price of 0 is a listing the reseller took out: left out."""
    rows = session.execute(
        select(m.ShopPrice, m.Listing)
        .join(m.Listing, m.Listing.listing_id == m.ShopPrice.listing_id)
        .where(m.ShopPrice.reseller == reseller, m.ShopPrice.price != 0)
        .order_by(m.ShopPrice.listing_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [(shop, listing) for shop, listing in rows]


def shop_sales(
    session: Session, *, reseller: str, limit: int = 100, offset: int = 0
) -> Sequence[tuple[m.Order, int]]:
    """The orders bought in a reseller's shop, newest first, each with the commission the
    mirror has credited the reseller for it (0 while open, or after a refund)."""
    credited = (
        select(func.coalesce(func.sum(m.Payout.amount), 0))
        .where(
            m.Payout.order_id == m.Order.order_id,
            m.Payout.account == reseller,
            m.Payout.kind == "commission",
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(m.Order, credited)
        .where(m.Order.reseller == reseller)
        .order_by(m.Order.paid_block.desc(), m.Order.order_id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(order, int(commission)) for order, commission in rows]


def supplier_records(session: Session, *, suppliers: Iterable[str]) -> dict[str, dict[str, int]]:
    """Each supplier's record: orders completed and refunded, disputes total and lost.

    A dispute is lost by the supplier when its ruling gave the buyer more than half of the
    payment or slashed the bond (the timeout fallback's equal split is not a loss).
    """
    wanted = sorted(set(suppliers))
    out: dict[str, dict[str, int]] = {
        s: {"orders_completed": 0, "orders_refunded": 0, "disputes_total": 0, "disputes_lost": 0}
        for s in wanted
    }
    if not wanted:
        return out
    rows = session.execute(
        select(m.Order.supplier, m.Order.state, func.count())
        .where(
            m.Order.supplier.in_(wanted),
            m.Order.state.in_([int(OrderState.COMPLETED), int(OrderState.REFUNDED)]),
        )
        .group_by(m.Order.supplier, m.Order.state)
    ).all()
    for supplier, state, count in rows:
        key = "orders_completed" if state == OrderState.COMPLETED else "orders_refunded"
        out[supplier][key] = int(count)
    lost = or_(m.Dispute.buyer_bps > 5000, m.Dispute.slash_bps > 0)
    rows = session.execute(
        select(
            m.Order.supplier,
            func.count(),
            func.sum(case((and_(m.Dispute.ruled.is_(True), lost), 1), else_=0)),
        )
        .join(m.Dispute, m.Dispute.order_id == m.Order.order_id)
        .where(m.Order.supplier.in_(wanted))
        .group_by(m.Order.supplier)
    ).all()
    for supplier, total, lost_count in rows:
        out[supplier]["disputes_total"] = int(total)
        out[supplier]["disputes_lost"] = int(lost_count or 0)
    return out


def get_order(session: Session, *, order_id: int) -> m.Order | None:
    """One order."""
    return session.get(m.Order, order_id)


def servable_releases(
    session: Session, *, order_ids: Iterable[int] | None = None, since_block: int = 0
) -> dict[int, int]:
    """The orders whose sealed release may be served, each with the block of its mirror row's
    latest change.

    A release is served only once it is the delivered one on-chain: this backend stored it (and
    has not given it up) and the mirror shows the order delivered with exactly its digest
    (`orders.release_digest` is set by OrderDelivered and kept through every later state).
    Serving it earlier would let a buyer hold the codes while the delivery could still miss its
    deadline and the whole payment be reclaimed (audit finding 10). A reorg that removes the
    delivery rolls the mirror back, and the release is not served again until the delivery is
    mined again.

    Args:
        session: A session on the database holding both the vault and the mirror.
        order_ids: Only these orders (every order when None).
        since_block: Only orders whose mirror row last changed at this block or later.
    """
    q = (
        select(Release.order_id, m.Order.updated_block)
        .join(m.Order, m.Order.order_id == Release.order_id)
        .where(
            Release.state.in_(sorted(LIVE_STATES)),
            m.Order.release_digest == Release.digest,
        )
    )
    if order_ids is not None:
        ids = sorted(set(order_ids))
        if not ids:
            return {}
        q = q.where(Release.order_id.in_(ids))
    if since_block:
        q = q.where(m.Order.updated_block >= since_block)
    return {int(oid): int(block) for oid, block in session.execute(q).all()}


def order_events(session: Session, *, order_id: int) -> Sequence[m.OrderEvent]:
    """An order's events in chain order."""
    return session.scalars(
        select(m.OrderEvent)
        .where(m.OrderEvent.order_id == order_id)
        .order_by(m.OrderEvent.block_number, m.OrderEvent.log_index)
    ).all()


def list_orders(
    session: Session,
    *,
    buyer: str | None = None,
    supplier: str | None = None,
    states: Sequence[int] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[m.Order]:
    """Orders, newest payment first."""
    q = select(m.Order)
    if buyer is not None:
        q = q.where(m.Order.buyer == buyer)
    if supplier is not None:
        q = q.where(m.Order.supplier == supplier)
    if states:
        q = q.where(m.Order.state.in_(list(states)))
    q = q.order_by(m.Order.paid_block.desc(), m.Order.order_id.desc()).limit(limit).offset(offset)
    return session.scalars(q).all()


def orders_by_state(session: Session, *, supplier: str) -> dict[int, int]:
    """How many of a supplier's orders are in each state."""
    rows = session.execute(
        select(m.Order.state, func.count())
        .where(m.Order.supplier == supplier)
        .group_by(m.Order.state)
    ).all()
    return {int(state): int(count) for state, count in rows}


def in_escrow(session: Session, *, supplier: str) -> dict[str, int]:
    """Payments the escrow holds for a supplier's open orders, per token.

    Summed in Python: amounts are uint256, stored as padded strings on SQLite.
    """
    totals: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(m.Order.token, m.Order.amount).where(
            m.Order.supplier == supplier, m.Order.state.in_(OPEN_STATES)
        )
    ).all()
    for token, amount in rows:
        totals[token] += int(amount)
    return dict(totals)


@dataclass
class SettlementTotals:
    """A supplier's settled, due and pending money in one token, at one chain time.

    Amounts are what the supplier is (or was) paid: each order's proceeds less the platform's
    fee and the reseller's commission (`contracts.order_rules.complete`).

    Attributes:
        settled: Paid for Completed orders (confirmed by the buyer, or settled after the window).
        settled_orders: How many.
        due: Owed for Delivered orders whose dispute window has closed (deadline before the
            chain time): anyone, the keeper too, may settle them now.
        due_orders: How many.
        in_window: Owed for Delivered orders still in their dispute window.
        in_window_orders: How many.
        next_due_at: The earliest deadline among the orders in their window (each becomes due
            once chain time passes its deadline), or None.
    """

    settled: int = 0
    settled_orders: int = 0
    due: int = 0
    due_orders: int = 0
    in_window: int = 0
    in_window_orders: int = 0
    next_due_at: int | None = None


def settlement_totals(
    session: Session, *, supplier: str, now: int | None
) -> dict[str, SettlementTotals]:
    """A supplier's settled, due and in-window amounts per token at chain time `now`.

    One query on the supplier's Delivered and Completed orders (the supplier index); the money
    is summed in Python with the contract's rules (uint256 amounts are padded strings on
    SQLite). Before the mirror has a block (`now` None) no order counts as due.
    """
    rows = session.execute(
        select(
            m.Order.token,
            m.Order.state,
            m.Order.deadline,
            m.Order.amount,
            m.Order.bond,
            m.Order.fee_bps,
            m.Order.reseller_cut,
        ).where(
            m.Order.supplier == supplier,
            m.Order.state.in_([int(OrderState.DELIVERED), int(OrderState.COMPLETED)]),
        )
    ).all()
    out: dict[str, SettlementTotals] = {}
    for row in rows:
        terms = order_rules.Terms(
            amount=int(row.amount),
            bond=int(row.bond),
            fee_bps=int(row.fee_bps),
            reseller_cut=int(row.reseller_cut),
        )
        paid = order_rules.complete(terms).to_supplier
        t = out.setdefault(row.token, SettlementTotals())
        state, deadline = int(row.state), int(row.deadline)
        if state == OrderState.COMPLETED:
            t.settled += paid
            t.settled_orders += 1
        elif now is not None and deadline < now:
            t.due += paid
            t.due_orders += 1
        else:
            t.in_window += paid
            t.in_window_orders += 1
            if t.next_due_at is None or deadline < t.next_due_at:
                t.next_due_at = deadline
    return out


def due_orders(
    session: Session, *, supplier: str, now: int | None, limit: int = 500
) -> Sequence[m.Order]:
    """A supplier's Delivered orders whose dispute window closed before chain time `now`,
    earliest deadline first (none before the mirror has a block)."""
    if now is None:
        return []
    return session.scalars(
        select(m.Order)
        .where(
            m.Order.supplier == supplier,
            m.Order.state == int(OrderState.DELIVERED),
            m.Order.deadline < now,
        )
        .order_by(m.Order.deadline, m.Order.order_id)
        .limit(limit)
    ).all()


def bonds(session: Session, *, supplier: str) -> Sequence[m.Bond]:
    """A supplier's bonds, per token."""
    return session.scalars(
        select(m.Bond).where(m.Bond.supplier == supplier).order_by(m.Bond.token)
    ).all()


def balances(session: Session, *, account: str) -> Sequence[m.Balance]:
    """An account's withdrawable balances, per token."""
    return session.scalars(
        select(m.Balance).where(m.Balance.account == account).order_by(m.Balance.token)
    ).all()


def settlements(session: Session, *, supplier: str, limit: int = 50) -> Sequence[m.Payout]:
    """Credits to a supplier's balance from finished orders, newest first."""
    return session.scalars(
        select(m.Payout)
        .where(
            m.Payout.account == supplier,
            m.Payout.kind.in_(["supplier", "ruling_supplier", "timeout_supplier"]),
        )
        .order_by(m.Payout.block_number.desc(), m.Payout.log_index.desc())
        .limit(limit)
    ).all()


def earned(session: Session, *, supplier: str) -> dict[str, int]:
    """All settlements credited to a supplier, per token."""
    totals: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(m.Payout.token, m.Payout.amount).where(
            m.Payout.account == supplier,
            m.Payout.kind.in_(["supplier", "ruling_supplier", "timeout_supplier"]),
        )
    ).all()
    for token, amount in rows:
        totals[token] += int(amount)
    return dict(totals)


def disputes(
    session: Session, *, include_ruled: bool = False, limit: int = 200
) -> Sequence[tuple[m.Dispute, m.Order]]:
    """Disputes with their orders, oldest first (the arbiter's queue)."""
    q = select(m.Dispute, m.Order).join(m.Order, m.Order.order_id == m.Dispute.order_id)
    if not include_ruled:
        q = q.where(m.Dispute.ruled.is_(False))
    q = q.order_by(m.Dispute.opened_at, m.Dispute.block_number, m.Dispute.log_index).limit(limit)
    return [(d, o) for d, o in session.execute(q).all()]


def evidence(session: Session, *, order_ids: Sequence[int]) -> dict[int, list[m.Evidence]]:
    """Evidence per order, in chain order."""
    out: dict[int, list[m.Evidence]] = defaultdict(list)
    if not order_ids:
        return out
    rows = session.scalars(
        select(m.Evidence)
        .where(m.Evidence.order_id.in_(list(order_ids)))
        .order_by(m.Evidence.block_number, m.Evidence.log_index)
    ).all()
    for row in rows:
        out[int(row.order_id)].append(row)
    return out


def indexed_block(session: Session, *, chain_id: int, contract: str) -> int | None:
    """The mirror's checkpoint for this escrow, or None before the indexer's first commit."""
    row = session.get(m.Checkpoint, (chain_id, contract))
    return None if row is None else int(row.block_number)


def chain_time(session: Session, *, chain_id: int) -> int | None:
    """The timestamp of the newest block the mirror has applied (chain time, which on a test
    chain that travels in time is not wall time), or None before the first.

    The newest block by number (the primary key's index), whose timestamp is the greatest: a
    block's timestamp is never below its parent's.
    """
    value = session.scalar(
        select(m.Block.timestamp)
        .where(m.Block.chain_id == chain_id)
        .order_by(m.Block.number.desc())
        .limit(1)
    )
    return None if value is None else int(value)
