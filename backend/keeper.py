"""The keeper: nothing waits on a click (issue 13).

Each pass, at chain time `now`, it reads from the mirror

- delivered orders whose dispute window has closed (the stored deadline is behind `now`), and
  queues ``settle`` for them in batches of `batch_size`: the supplier is paid without the
  buyer pressing Confirm;
- disputes past their arbitration deadline that nobody ruled, and queues ``resolveTimedOut``
  for each (the contract's 50/50 fallback);

then lets the chain gateway (`backend.gateway`) send them. Both functions may be called by
anyone, so the keeper's key needs no role and holds only gas money. Orders already in an
unfinished keeper transaction are left out, and the contract skips orders someone else settled
in the meantime (``SettlementSkipped``), so no gas is spent twice on one order. A killed keeper
restarts from the gateway's table: what was signed is sent again byte for byte, what was queued
is signed, and due orders not in either are queued afresh.

Exactly one keeper acts at a time (`backend.election`): on PostgreSQL `run_forever` holds a
session-level advisory lock (as the indexer's writer does) and a second keeper stands by until
the first one's session ends; on SQLite, run one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from backend.chaintx import encode_call
from backend.election import Seat
from backend.gateway.gateway import Gateway, busy_subjects, enqueue
from contracts.encoding import Order, OrderState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Orders settled per transaction by default: about the block gas limit's share that keeps a
#: settle transaction small (`kameng bench gas` measures the cost per order at 50).
DEFAULT_BATCH = 50


@dataclass(frozen=True)
class KeeperPass:
    """What one pass queued."""

    settle_orders: int
    settle_batches: int
    resolutions: int


class Keeper:
    """Settles due orders and resolves timed-out disputes, through the gateway.

    Args:
        session_factory: Makes database sessions.
        gateway: Sends the transactions (it holds the keeper's key).
        sender: The keeper's address (no role needed).
        escrow: The escrow's address.
        batch_size: Orders per ``settle``.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        gateway: Gateway,
        sender: str,
        escrow: str,
        *,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        """Bind the keeper."""
        self.session_factory = session_factory
        self.gateway = gateway
        self.sender = sender
        self.escrow = escrow
        self.batch_size = batch_size
        #: Where this keeper stands in the election of the one active keeper.
        self.seat = Seat("keeper")

    def queue_due(self, session: Session, now: int) -> KeeperPass:
        """Queue what is due at chain time `now` (committed with the caller's session)."""
        from indexer import models as mirror

        # Work mined but not yet in the mirror still looks due there: leave it out, or the
        # next batch would pay gas only to have the contract skip it.
        mirrored = session.scalar(select(func.max(mirror.Checkpoint.block_number))) or 0
        busy = busy_subjects(session, "settle", mined_after=mirrored) | busy_subjects(
            session, "resolve", mined_after=mirrored
        )
        due = [
            o
            for o in session.scalars(
                select(mirror.Order)
                .where(
                    mirror.Order.state == int(OrderState.DELIVERED),
                    mirror.Order.deadline < now,
                )
                .order_by(mirror.Order.deadline, mirror.Order.order_id)
                .limit(self.batch_size * 10)
            )
            if int(o.order_id) not in busy
        ]
        batches = 0
        for start in range(0, len(due), self.batch_size):
            chunk = due[start : start + self.batch_size]
            ids = [int(o.order_id) for o in chunk]
            orders = [Order.from_record(o).as_tuple() for o in chunk]
            digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:32]
            enqueue(
                session,
                intent="settle",
                key=f"settle:{digest}:{now}",
                sender=self.sender,
                to=self.escrow,
                data=encode_call("settle", [ids, orders]),
                subjects=ids,
            )
            batches += 1
        timed_out = session.execute(
            select(mirror.Order)
            .join(mirror.Dispute, mirror.Dispute.order_id == mirror.Order.order_id)
            .where(
                mirror.Order.state == int(OrderState.DISPUTED),
                mirror.Dispute.ruled.is_(False),
                mirror.Dispute.arbitration_deadline < now,
            )
            .order_by(mirror.Dispute.arbitration_deadline)
            .limit(self.batch_size)
        ).scalars()
        resolutions = 0
        for order in timed_out:
            oid = int(order.order_id)
            if oid in busy:
                continue
            enqueue(
                session,
                intent="resolve",
                key=f"resolve:{oid}:{now}",
                sender=self.sender,
                to=self.escrow,
                data=encode_call("resolveTimedOut", [oid, Order.from_record(order).as_tuple()]),
                subjects=[oid],
            )
            resolutions += 1
        return KeeperPass(len(due), batches, resolutions)

    def run_once(self, now: int) -> KeeperPass:
        """Queue what is due at `now`, then let the gateway send and follow it."""
        with self.session_factory() as session:
            queued = self.queue_due(session, now)
            session.commit()
        if queued.settle_batches or queued.resolutions:
            log.info(
                "keeper: %d order(s) to settle in %d batch(es), %d dispute(s) to resolve",
                queued.settle_orders,
                queued.settle_batches,
                queued.resolutions,
            )
        self.gateway.run_once()
        return queued

    @property
    def active(self) -> bool:
        """Whether `run_forever` holds the keeper's role and acts."""
        return self.seat.active

    @property
    def standing_by(self) -> bool:
        """Whether `run_forever` found another keeper active and waits for its role."""
        return self.seat.standing_by

    def run_forever(
        self,
        stop: threading.Event,
        chain_now: Callable[[], int],
        poll_s: float = 0.5,
        chain_id: int = 0,
    ) -> None:
        """Run passes until `stop` is set (`chain_now`: the latest block's time), as the only
        active keeper of this database (`backend.election`; a standby on PostgreSQL while
        another one is)."""
        from backend.election import run_elected

        with self.session_factory() as session:
            engine = session.get_bind()
        assert isinstance(engine, Engine)

        def work(term_over: threading.Event) -> None:
            while not term_over.is_set():
                try:
                    self.run_once(chain_now())
                except Exception:  # a node or database hiccup: log, pause, go on
                    log.exception("keeper pass failed; retrying")
                term_over.wait(poll_s)

        run_elected(
            engine,
            self.seat,
            chain_id=chain_id,
            escrow=self.escrow,
            stop=stop,
            work=work,
            poll_s=poll_s,
        )


__all__ = ["DEFAULT_BATCH", "Keeper", "KeeperPass"]
