"""Retention: once an order is final and a grace period has passed, its plaintext goes.

The rule (also in docs/SECURITY.md): an order is *final* when the escrow says it is completed,
refunded or resolved; by then its dispute window and its arbitration deadline are behind it and
no ruling can need its codes again. `retention_grace_seconds` (default 7 days) after the block
that made it final, the delivery agent's sweep

- blanks the vault's copy of the order's codes: ciphertext, wrapped key and note are erased and
  the row's state becomes ``purged``; the commitment and the fingerprint stay, so the batch's
  Merkle proofs still build and a re-upload of the same code is still refused as a duplicate;
- deletes the parties' evidence additions (the buyer's per-order secret, the supplier's codes).

The buyer's sealed release stays: it is encrypted to the buyer's own key, and it is what the
buyer fetches to read its codes again. The record of disclosures stays too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, select, update

from backend.evidence.store import Addition, purge_additions
from contracts.encoding import OrderState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: States after which no window or ruling can need an order's codes.
FINAL_STATES = (OrderState.COMPLETED, OrderState.REFUNDED, OrderState.RESOLVED)
#: State of a vault row whose secret parts were erased.
PURGED = "purged"


@dataclass(frozen=True)
class PurgeReport:
    """What one sweep erased."""

    orders: int
    codes: int
    additions: int


def purge_final_orders(
    session: Session, *, now: int, grace_s: int, batch: int = 500
) -> PurgeReport:
    """Erase the codes and additions of orders final for at least `grace_s` at chain time `now`.

    Idempotent and resumable: each call handles up to `batch` orders that still hold something
    and commits; a crash between calls loses nothing that should be kept.
    """
    from backend.models import Code
    from indexer.models import Order

    cutoff = now - grace_s
    final = and_(Order.state.in_([int(s) for s in FINAL_STATES]), Order.updated_at <= cutoff)
    holds_codes = exists().where(
        Code.listing_id == Order.listing_id,
        Code.code_index >= Order.first_index,
        Code.code_index < Order.first_index + Order.quantity,
        Code.state != PURGED,
    )
    orders = session.execute(
        select(Order.order_id, Order.listing_id, Order.first_index, Order.quantity)
        .where(final, holds_codes)
        .order_by(Order.updated_at)
        .limit(batch)
    ).all()
    codes = 0
    for _order_id, listing_id, first, quantity in orders:
        result = session.execute(
            update(Code)
            .where(
                Code.listing_id == listing_id,
                Code.code_index >= first,
                Code.code_index < first + quantity,
                Code.state != PURGED,
            )
            .values(
                ciphertext=b"", wrapped_key=b"", legacy_note=None, note_sealed=None, state=PURGED
            )
        )
        codes += int(getattr(result, "rowcount", 0) or 0)
    added = [int(o) for o in session.scalars(select(Addition.order_id).distinct())]
    ripe: list[int] = []
    for start in range(0, len(added), batch):
        chunk = added[start : start + batch]
        ripe += [
            int(o)
            for o in session.scalars(select(Order.order_id).where(final, Order.order_id.in_(chunk)))
        ]
    additions = purge_additions(session, ripe)
    session.commit()
    if orders or additions:
        log.info(
            "retention: erased %d codes of %d final orders and %d evidence additions",
            codes,
            len(orders),
            additions,
        )
    return PurgeReport(orders=len(orders), codes=codes, additions=additions)


__all__ = ["FINAL_STATES", "PURGED", "PurgeReport", "purge_final_orders"]
