"""Turns what the mirror recorded, and deadlines coming up, into outbox messages.

Each pass, in one transaction:

1. reads the mirror's order history (``order_events``) after the producer's cursor, up to the
   indexer's checkpoint less `confirmations` blocks, and writes one outbox row per event per
   subscribed endpoint of the people it concerns (`catalog.FROM_EVENT`), then moves the cursor;
2. looks for deadlines coming up at chain time `now` (dispute window closing in 24 h and 1 h,
   delivery deadline within 1 h and not delivered, arbitration deadline within 24 h and 1 h);
3. reads the escrow's ``SkuAuthorized`` logs (the mirror's raw events) after a second cursor,
   to the same block, and tells a supplier each revocation of a licence it held
   (``licence.revoked``);
4. compares each listing's stock with its threshold and alerts once per crossing.

Every row carries a de-duplication key naming its cause (the event row, the log, the deadline),
unique per endpoint, so a pass repeated after a crash writes nothing twice, and a crash before
the commit loses nothing: the cursors did not move either.
"""

from __future__ import annotations

import json
import logging
import re
import time
from base64 import b64decode
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sqlalchemy import func, select

from backend.notify.catalog import FROM_EVENT, KINDS
from backend.notify.models import Endpoint, NotifyCursor, OutboxMessage, StockFlag
from contracts.encoding import OrderState, sku_id

if TYPE_CHECKING:
    import threading

    from sqlalchemy.orm import Session

    from indexer import models as mirror
    from indexer.decode import LogDecoder

log = logging.getLogger(__name__)

HOUR = 3_600
DAY = 86_400
#: Reminders before a dispute window or an arbitration deadline closes, in seconds.
REMINDERS = (DAY, HOUR)
#: Default low-stock threshold of a listing (库存预警).
DEFAULT_STOCK_THRESHOLD = 20
#: The producer's cursors (``notify_cursor.name``): the mirror's order history, and the
#: escrow's ``SkuAuthorized`` logs among its raw events (licences granted and revoked).
EVENTS, LICENCES = "events", "licences"
#: The attestation hash of a revoked licence.
REVOKED = "0x" + "00" * 32


def sku_name(sku: str, metadata_uris: Iterable[str]) -> str | None:
    """The name of `sku` where a listing's metadata proves it, else None.

    Candidates, as the web front-end takes them: the ``sku`` and ``name`` of a
    ``data:application/json,...`` document, and the URI's last path segment
    (``kameng:dev/demo-gift-card-10``); a candidate is the name only if its keccak-256 is the
    sku (`contracts.encoding.sku_id`).
    """
    for uri in metadata_uris:
        candidates: list[object] = []
        if uri.startswith("data:application/json") and "," in uri:
            head, body = uri.split(",", 1)
            with suppress(ValueError):
                raw = b64decode(body).decode() if ";base64" in head else unquote(body)
                meta = json.loads(raw)
                if isinstance(meta, dict):
                    candidates += [meta.get("sku"), meta.get("name")]
        parts = [p for p in re.split(r"[/:]", uri) if p]
        candidates += parts[-1:]
        for c in candidates:
            if isinstance(c, str) and c and "0x" + sku_id(c).hex() == sku.lower():
                return c
    return None


@cache
def _decoder() -> LogDecoder:
    """The escrow's log decoder, values in the mirror's representation."""
    from contracts.client import escrow_codec
    from indexer.decode import LogDecoder

    return LogDecoder(escrow_codec())


def _args(raw: mirror.RawEvent) -> dict[str, Any]:
    """The decoded arguments of a raw event row."""
    decoded = _decoder().decode(raw.topics.split(","), "0x" + bytes(raw.data).hex())
    assert decoded is not None, f"raw event {raw.id} is not an escrow event"
    return decoded[1]


def utc(ts: int | None) -> str:
    """Unix seconds as ``2026-12-02 01:55 UTC`` (``?`` for none)."""
    if not ts:
        return "?"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cursor(session: Session, name: str, start: int = 0) -> NotifyCursor:
    """The producer's cursor `name`, made at `start` the first time (committed with the pass)."""
    cursor = session.get(NotifyCursor, name)
    if cursor is None:
        cursor = NotifyCursor(name=name, position=start)
        session.add(cursor)
    return cursor


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
            cursor = _cursor(session, EVENTS)
            # Both ids are (block, log index) (`indexer.apply.row_id`): a producer upgraded to
            # tell revocations starts where its order history stood, not with old ones.
            licences = _cursor(session, LICENCES, start=int(cursor.position))
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
            upto = indexed - self.confirmations
            written += self._revocations(session, licences, endpoints, upto, batch)
            if endpoints:
                written += self._deadlines(session, endpoints, now)
                written += self._stock(session, endpoints)
            session.commit()
        return written

    def _revocations(
        self,
        session: Session,
        cursor: NotifyCursor,
        endpoints: Sequence[Endpoint],
        upto: int,
        batch: int,
    ) -> int:
        """Tell suppliers of the licences revoked up to block `upto`, once per revocation.

        A revocation is a ``SkuAuthorized`` log with a zero attestation that ends an
        authorization in force; one for a pair never authorized, or already revoked, changes
        nothing and is not told. The raw logs are read rather than the ``authorizations`` table,
        which keeps only the latest value: a licence revoked and granted again before a pass is
        still told. Finding the authorization a revocation ends scans back through the raw
        logs, which is done only for a revocation (rare).
        """
        from indexer import models as mirror
        from indexer.apply import row_id

        if upto < 0:
            return 0
        logs = session.scalars(
            select(mirror.RawEvent)
            .where(
                mirror.RawEvent.name == "SkuAuthorized",
                mirror.RawEvent.id > cursor.position,
                mirror.RawEvent.block_number <= upto,
            )
            .order_by(mirror.RawEvent.id)
            .limit(batch)
        ).all()
        written = 0
        for raw in logs:
            cursor.position = int(raw.id)
            args = _args(raw)
            if args["attestationHash"] != REVOKED or not endpoints:
                continue
            previous = session.scalars(
                select(mirror.RawEvent)
                .where(
                    mirror.RawEvent.name == "SkuAuthorized",
                    mirror.RawEvent.topics == raw.topics,  # the same (supplier, sku)
                    mirror.RawEvent.id < raw.id,
                )
                .order_by(mirror.RawEvent.id.desc())
                .limit(1)
            ).first()
            if previous is None or _args(previous)["attestationHash"] == REVOKED:
                continue
            supplier, sku = str(args["supplier"]), str(args["sku"])
            written += self._put(
                session,
                self._recipients(endpoints, "licence.revoked", None, supplier),
                "licence.revoked",
                f"licence:{raw.id}",
                self._revocation_data(session, raw, supplier, sku),
            )
        if len(logs) < batch:
            # Every log to `upto` is read: the next pass starts after that block, not after the
            # last authorization (ids are (block, log index), `indexer.apply.row_id`).
            cursor.position = max(int(cursor.position), row_id(upto + 1, 0) - 1)
        return written

    def _revocation_data(
        self, session: Session, raw: mirror.RawEvent, supplier: str, sku: str
    ) -> dict[str, object]:
        from indexer import models as mirror

        listings = session.scalars(
            select(mirror.Listing)
            .where(mirror.Listing.supplier == supplier, mirror.Listing.sku == sku)
            .order_by(mirror.Listing.listing_id)
        ).all()
        name = sku_name(sku, [listing.metadata_uri for listing in listings])
        ids = [int(listing.listing_id) for listing in listings]
        data: dict[str, object] = {
            "supplier": supplier,
            "sku": sku,
            **({"sku_name": name} if name else {}),
            "sku_label": name or f"sku {sku}",
            "listings": ids,
            "listing_ids": ", ".join(map(str, ids)) or "none",
            "block": int(raw.block_number),
            "tx": raw.tx_hash,
        }
        if self.public_url:
            data["link"] = f"{self.public_url}/#/supplier"
        return data

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


__all__ = [
    "DEFAULT_STOCK_THRESHOLD",
    "EVENTS",
    "LICENCES",
    "REMINDERS",
    "REVOKED",
    "Producer",
    "sku_name",
    "utc",
]
