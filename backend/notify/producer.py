"""Turns what the mirror recorded, and deadlines coming up, into outbox messages.

Each pass, in one transaction:

1. reads the mirror's order history (``order_events``) after the producer's cursor, up to the
   indexer's checkpoint less `confirmations` blocks, and writes one outbox row per event per
   subscribed endpoint of the people it concerns (`catalog.FROM_EVENT`), then moves the cursor;
2. looks for deadlines coming up at chain time `now` (dispute window closing in 24 h and 1 h,
   delivery deadline within 1 h and not delivered, arbitration deadline within 24 h and 1 h);
3. compares each listing's stock with its threshold and alerts once per crossing.

Every row carries a de-duplication key naming its cause (the event row, the deadline), unique
per endpoint, so a pass repeated after a crash writes nothing twice, and a crash before the
commit loses nothing: the cursor did not move either.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from backend.notify.catalog import FROM_EVENT, KINDS
from backend.notify.models import Endpoint, NotifyCursor, OutboxMessage, StockFlag
from contracts.encoding import OrderState

if TYPE_CHECKING:
    import threading

    from sqlalchemy.orm import Session

    from indexer import models as mirror

log = logging.getLogger(__name__)

HOUR = 3_600
DAY = 86_400
#: Reminders before a dispute window or an arbitration deadline closes, in seconds.
REMINDERS = (DAY, HOUR)
#: Default low-stock threshold of a listing (库存预警).
DEFAULT_STOCK_THRESHOLD = 20


def utc(ts: int | None) -> str:
    """Unix seconds as ``2026-12-02 01:55 UTC`` (``?`` for none)."""
    if not ts:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


class Producer:
    """Writes outbox rows for what happened.

    Args:
        session_factory: Makes database sessions.
        public_url: The web front-end's URL, for links in messages (None: no links), or a
            function answering it when asked (a server learns its URL once it listens).
        confirmations: Blocks an event must be below the indexer's checkpoint before it is
            told (0 on a development chain; a few on a chain that reorganises).
        clock: Unix time the rows are stamped with.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        public_url: str | Callable[[], str | None] | None = None,
        confirmations: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Bind the producer."""
        self.session_factory = session_factory
        self._public_url = public_url
        self.confirmations = confirmations
        self.clock = clock

    # ------------------------------------------------------------ helpers

    @property
    def public_url(self) -> str | None:
        """The base of the links in messages, if known."""
        url = self._public_url() if callable(self._public_url) else self._public_url
        return url.rstrip("/") if url else None

    def _data(self, order: mirror.Order, **extra: Any) -> dict[str, object]:
        data: dict[str, object] = {
            "order_id": str(order.order_id),
            "listing_id": int(order.listing_id),
            "quantity": int(order.quantity),
            "amount": str(order.amount),
            "token": order.token,
            "buyer": order.buyer,
            "supplier": order.supplier,
            "deadline": int(order.deadline),
            "deadline_utc": utc(int(order.deadline)),
        }
        if self.public_url:
            data["link"] = f"{self.public_url}/#/order/{order.order_id}"
        data.update(extra)
        return data

    @staticmethod
    def _recipients(
        endpoints: Sequence[Endpoint], kind: str, buyer: str | None, supplier: str | None
    ) -> Iterable[Endpoint]:
        who = KINDS[kind].recipients
        for e in endpoints:
            if not e.wants(kind):
                continue
            if (
                ("buyer" in who and e.owner == buyer)
                or ("supplier" in who and e.owner == supplier)
                or ("arbiters" in who and e.as_arbiter)
            ):
                yield e

    def _put(
        self,
        session: Session,
        endpoints: Iterable[Endpoint],
        kind: str,
        key: str,
        data: dict[str, object],
    ) -> int:
        now = self.clock()
        written = 0
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
        for endpoint in endpoints:
            exists = session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.endpoint_id == endpoint.id, OutboxMessage.dedupe_key == key
                )
            )
            if exists is not None:
                continue
            session.add(
                OutboxMessage(
                    endpoint_id=endpoint.id,
                    event_type=kind,
                    dedupe_key=key,
                    payload=payload,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            written += 1
        return written

    # ------------------------------------------------------------ a pass

    def run_once(self, now: int, batch: int = 500) -> int:
        """One pass at chain time `now`; returns how many outbox rows it wrote."""
        from indexer import models as mirror

        with self.session_factory() as session:
            endpoints = list(session.scalars(select(Endpoint).where(Endpoint.active.is_(True))))
            cursor = session.get(NotifyCursor, "events")
            if cursor is None:
                cursor = NotifyCursor(name="events", position=0)
                session.add(cursor)
            indexed = session.scalar(select(func.max(mirror.Checkpoint.block_number))) or 0
            events = session.scalars(
                select(mirror.OrderEvent)
                .where(
                    mirror.OrderEvent.id > cursor.position,
                    mirror.OrderEvent.block_number <= indexed - self.confirmations,
                )
                .order_by(mirror.OrderEvent.id)
                .limit(batch)
            ).all()
            written = 0
            for event in events:
                cursor.position = int(event.id)
                kind = FROM_EVENT.get(event.name)
                order = session.get(mirror.Order, event.order_id) if kind else None
                if kind is None or order is None or not endpoints:
                    continue
                extra: dict[str, Any] = {"event": event.name, "tx": event.tx_hash}
                if kind in ("order.delivered", "order.disputed", "order.ruled"):
                    extra.update(self._dispute_facts(session, order))
                written += self._put(
                    session,
                    self._recipients(endpoints, kind, order.buyer, order.supplier),
                    kind,
                    f"ev:{event.id}",
                    self._data(order, **extra),
                )
            if endpoints:
                written += self._deadlines(session, endpoints, now)
                written += self._stock(session, endpoints)
            session.commit()
        return written

    def _dispute_facts(self, session: Session, order: mirror.Order) -> dict[str, object]:
        from indexer import models as mirror

        facts: dict[str, object] = {}
        delivery = session.get(mirror.Delivery, order.order_id)
        if delivery is not None:
            facts["dispute_deadline"] = int(delivery.dispute_deadline)
            facts["dispute_deadline_utc"] = utc(int(delivery.dispute_deadline))
        dispute = session.get(mirror.Dispute, order.order_id)
        if dispute is not None:
            facts["arbitration_deadline"] = int(dispute.arbitration_deadline)
            facts["arbitration_deadline_utc"] = utc(int(dispute.arbitration_deadline))
            if dispute.ruled:
                facts["buyer_bps_pct"] = (dispute.buyer_bps or 0) / 100
                facts["slash_bps_pct"] = (dispute.slash_bps or 0) / 100
                facts["slashed"] = str(dispute.slashed or 0)
        return facts

    def _deadlines(self, session: Session, endpoints: Sequence[Endpoint], now: int) -> int:
        from indexer import models as mirror

        written = 0
        horizon = now + max(REMINDERS)
        windows = session.execute(
            select(mirror.Order, mirror.Delivery)
            .join(mirror.Delivery, mirror.Delivery.order_id == mirror.Order.order_id)
            .where(
                mirror.Order.state == int(OrderState.DELIVERED),
                mirror.Delivery.dispute_deadline > now,
                mirror.Delivery.dispute_deadline <= horizon,
            )
        ).all()
        for order, delivery in windows:
            end = int(delivery.dispute_deadline)
            for before in REMINDERS:
                # Only if the window was longer than the reminder, and it is now due.
                if end - int(delivery.timestamp) > before and end - now <= before:
                    written += self._put(
                        session,
                        self._recipients(
                            endpoints, "order.dispute_window_closing", order.buyer, None
                        ),
                        "order.dispute_window_closing",
                        f"dw{before}:{order.order_id}",
                        self._data(
                            order,
                            dispute_deadline=end,
                            dispute_deadline_utc=utc(end),
                            hours_left=max(1, round((end - now) / HOUR)),
                        ),
                    )
        undelivered = session.scalars(
            select(mirror.Order).where(
                mirror.Order.state == int(OrderState.PAID),
                mirror.Order.deadline > now,
                mirror.Order.deadline <= now + HOUR,
            )
        ).all()
        for order in undelivered:
            if int(order.deadline) - int(order.paid_at) > HOUR:
                written += self._put(
                    session,
                    self._recipients(
                        endpoints, "order.delivery_deadline_close", None, order.supplier
                    ),
                    "order.delivery_deadline_close",
                    f"dd:{order.order_id}",
                    self._data(order),
                )
        disputes = session.execute(
            select(mirror.Order, mirror.Dispute)
            .join(mirror.Dispute, mirror.Dispute.order_id == mirror.Order.order_id)
            .where(
                mirror.Dispute.ruled.is_(False),
                mirror.Dispute.arbitration_deadline > now,
                mirror.Dispute.arbitration_deadline <= horizon,
            )
        ).all()
        for order, dispute in disputes:
            end = int(dispute.arbitration_deadline)
            for before in REMINDERS:
                if end - int(dispute.opened_at) > before and end - now <= before:
                    written += self._put(
                        session,
                        self._recipients(endpoints, "order.arbitration_deadline_close", None, None),
                        "order.arbitration_deadline_close",
                        f"ad{before}:{order.order_id}",
                        self._data(
                            order, arbitration_deadline=end, arbitration_deadline_utc=utc(end)
                        ),
                    )
        return written

    def _stock(self, session: Session, endpoints: Sequence[Endpoint]) -> int:
        from indexer import models as mirror

        suppliers = {e.owner for e in endpoints if e.wants("listing.low_stock")}
        if not suppliers:
            return 0
        written = 0
        listings = session.scalars(
            select(mirror.Listing).where(mirror.Listing.supplier.in_(suppliers))
        ).all()
        for listing in listings:
            flag = session.get(StockFlag, listing.listing_id)
            if flag is None:
                flag = StockFlag(
                    listing_id=listing.listing_id, low=False, threshold=DEFAULT_STOCK_THRESHOLD
                )
                session.add(flag)
            stock = int(listing.committed) - int(listing.sold)
            if stock > flag.threshold:
                flag.low = False
            elif not flag.low and int(listing.committed) > 0:
                flag.low = True
                written += self._put(
                    session,
                    self._recipients(endpoints, "listing.low_stock", None, listing.supplier),
                    "listing.low_stock",
                    f"stock:{listing.listing_id}:{listing.sold}",
                    {
                        "listing_id": int(listing.listing_id),
                        "stock": stock,
                        "threshold": flag.threshold,
                        **({"link": f"{self.public_url}/#/supplier"} if self.public_url else {}),
                    },
                )
        return written

    def run_forever(
        self, stop: threading.Event, chain_now: Callable[[], int], poll_s: float = 0.5
    ) -> None:
        """Run passes until `stop` is set (`chain_now`: the chain's latest block time)."""
        while not stop.is_set():
            try:
                self.run_once(chain_now())
            except Exception:  # a database or node hiccup: log, pause, go on
                log.exception("notification producer pass failed")
            stop.wait(poll_s)


__all__ = ["DEFAULT_STOCK_THRESHOLD", "REMINDERS", "Producer", "utc"]
