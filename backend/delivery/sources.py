"""Where the delivery agent learns of paid orders: the indexer's mirror, or the chain's logs.

Both give the same thing, `PaidOrder`s that are paid, still open, not past their deadline, for a
listing the vault holds codes for, and without a stored release. The release table is what
makes delivery idempotent, so switching sources (or running both) can never deliver twice.

- `MirrorOrderSource` reads the indexer's ``orders`` table (preferred: no extra RPC load).
- `ChainLogOrderSource` reads OrderPaid and the closing events with ``eth_getLogs`` in small
  block ranges, re-reading `reorg_depth` blocks behind its cursor on every poll. It stores what
  it finds (``agent_paid_orders``) in the same database transaction as its cursor, so a crash
  loses nothing.
- `AutoOrderSource` uses the mirror once the indexer has a checkpoint for this escrow, and the
  chain logs until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Select, exists, select

from backend.models import AgentCursor, AgentPaidOrder, Release, Upload
from contracts.client import order_from_paid_event
from contracts.encoding import Order, OrderState, split_order_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from contracts.client import EscrowClient

ZERO32 = b"\0" * 32
#: Events after which an order no longer waits for delivery.
CLOSING_EVENTS = (
    "OrderDelivered",
    "OrderRefunded",
    "OrderConfirmed",
    "OrderSettled",
    "DisputeOpened",
    "DisputeRuled",
)


@dataclass(frozen=True)
class PaidOrder:
    """A paid order waiting for delivery.

    Attributes:
        order_id: Its id.
        order: The Order struct as stored on-chain while Paid.
        buyer_pubkey: The buyer's X25519 key from OrderPaid.
        paid_block: The block of its OrderPaid event.
    """

    order_id: int
    order: Order
    buyer_pubkey: bytes
    paid_block: int

    @property
    def listing_id(self) -> int:
        """The listing."""
        return split_order_id(self.order_id)[0]

    @property
    def first_index(self) -> int:
        """The first code index."""
        return split_order_id(self.order_id)[1]


def encode_order(order: Order) -> bytes:
    """``abi.encode(order)``."""
    return order.encode()


def decode_order(data: bytes) -> Order:
    """The inverse of `encode_order`."""
    return Order.decode(data)


def _our_listings() -> Select[int]:
    """Listings with at least one committed upload in the vault."""
    return select(Upload.listing_id).where(Upload.state == "committed").distinct()


class PaidOrderSource(Protocol):
    """What the agent needs from a source of paid orders."""

    name: str

    def poll(self, session: Session) -> None:
        """Catch up with the chain (may commit the session)."""

    def candidates(self, session: Session, *, min_deadline: int, limit: int) -> list[PaidOrder]:
        """Open paid orders with a deadline after `min_deadline` and no stored release."""
        ...


class MirrorOrderSource:
    """Paid orders from the indexer's mirror (`indexer.models.Order`)."""

    name = "mirror"

    def poll(self, session: Session) -> None:
        """Nothing to do: the indexer keeps the mirror current."""

    def candidates(self, session: Session, *, min_deadline: int, limit: int) -> list[PaidOrder]:
        """Open paid orders in the mirror with no stored release."""
        from indexer.models import Order as MirrorOrder

        rows = session.execute(
            select(MirrorOrder)
            .where(
                MirrorOrder.state == int(OrderState.PAID),
                MirrorOrder.deadline > min_deadline,
                MirrorOrder.listing_id.in_(_our_listings()),
                ~exists().where(Release.order_id == MirrorOrder.order_id),
            )
            .order_by(MirrorOrder.paid_block)
            .limit(limit)
        ).scalars()
        out = []
        for r in rows:
            order = Order.from_record(r)  # state Paid, digest 0: the query's filter
            pubkey = bytes.fromhex(r.buyer_pubkey.removeprefix("0x"))
            out.append(PaidOrder(int(r.order_id), order, pubkey, int(r.paid_block)))
        return out


class ChainLogOrderSource:
    """Paid orders read straight from the escrow's logs."""

    name = "chain"

    def __init__(
        self,
        escrow: EscrowClient,
        *,
        start_block: int = 0,
        log_range: int = 50,
        reorg_depth: int = 12,
    ) -> None:
        """Bind to an escrow.

        Args:
            escrow: The escrow.
            start_block: The first block to read (the escrow's deployment block is best).
            log_range: Blocks per ``eth_getLogs`` request.
            reorg_depth: Blocks re-read behind the cursor on every poll.
        """
        self.escrow = escrow
        self.start_block = start_block
        self.log_range = max(1, log_range)
        self.reorg_depth = reorg_depth
        self.cursor_name = f"paid-orders:{escrow.address}"
        codec = escrow.codec
        self._topics = ["0x" + codec.topic(name).hex() for name in ("OrderPaid", *CLOSING_EVENTS)]

    def poll(self, session: Session) -> None:
        """Read new logs up to the latest block; commits after each range."""
        latest = int(self.escrow.w3.eth.block_number)
        cursor = session.get(AgentCursor, self.cursor_name)
        next_block = self.start_block if cursor is None else cursor.block_number + 1
        start = max(self.start_block, next_block - self.reorg_depth)
        while start <= latest:
            end = min(latest, start + self.log_range - 1)
            self._read(session, start, end)
            cursor = session.get(AgentCursor, self.cursor_name)
            if cursor is None:
                session.add(AgentCursor(name=self.cursor_name, block_number=end))
            else:
                cursor.block_number = max(cursor.block_number, end)
            session.commit()
            start = end + 1

    def _read(self, session: Session, start: int, end: int) -> None:
        events = [
            ev
            for ev in (
                self.escrow.codec.decode_log(raw)
                for raw in self.escrow.logs(start, end, [self._topics])
            )
            if ev is not None and "orderId" in ev.args
        ]
        if not events:
            return
        ids = {int(ev.args["orderId"]) for ev in events}
        known = {
            int(row.order_id): row
            for row in session.execute(
                select(AgentPaidOrder).where(AgentPaidOrder.order_id.in_(list(ids)))
            ).scalars()
        }
        for ev in events:
            oid = int(ev.args["orderId"])
            row = known.get(oid)
            if ev.name == "OrderPaid":
                if row is None:
                    order = order_from_paid_event(ev.args)
                    row = AgentPaidOrder(
                        order_id=oid,
                        listing_id=split_order_id(oid)[0],
                        supplier=order.supplier,
                        buyer_pubkey=bytes(ev.args["buyerPubKey"]),
                        order_abi=encode_order(order),
                        deadline=order.deadline,
                        paid_block=ev.block_number,
                        paid_tx=ev.tx_hash,
                        closed=False,
                    )
                    session.add(row)
                    known[oid] = row
            elif row is not None:
                row.closed = True

    def candidates(self, session: Session, *, min_deadline: int, limit: int) -> list[PaidOrder]:
        """Open paid orders found in the logs with no stored release."""
        rows = session.execute(
            select(AgentPaidOrder)
            .where(
                AgentPaidOrder.closed.is_(False),
                AgentPaidOrder.deadline > min_deadline,
                AgentPaidOrder.listing_id.in_(_our_listings()),
                ~exists().where(Release.order_id == AgentPaidOrder.order_id),
            )
            .order_by(AgentPaidOrder.paid_block)
            .limit(limit)
        ).scalars()
        return [
            PaidOrder(int(r.order_id), decode_order(r.order_abi), r.buyer_pubkey, r.paid_block)
            for r in rows
        ]


class AutoOrderSource:
    """The mirror once the indexer follows this escrow; the chain's logs until then."""

    name = "auto"

    def __init__(self, escrow: EscrowClient, chain_source: ChainLogOrderSource) -> None:
        """Bind to an escrow, with the chain-log source to fall back on."""
        self.escrow = escrow
        self.mirror = MirrorOrderSource()
        self.chain = chain_source
        self._chain_id = escrow.chain.chain_id
        self._use_mirror = False

    def _mirror_ready(self, session: Session) -> bool:
        if self._use_mirror:
            return True
        try:
            from indexer.models import Checkpoint
        except ImportError:
            return False
        from sqlalchemy.exc import SQLAlchemyError

        try:
            found = session.execute(
                select(Checkpoint.block_number).where(
                    Checkpoint.chain_id == self._chain_id,
                    Checkpoint.contract == self.escrow.address,
                )
            ).first()
        except SQLAlchemyError:
            session.rollback()
            return False
        self._use_mirror = found is not None
        return self._use_mirror

    def poll(self, session: Session) -> None:
        """Poll whichever source is in use."""
        if not self._mirror_ready(session):
            self.chain.poll(session)

    def candidates(self, session: Session, *, min_deadline: int, limit: int) -> list[PaidOrder]:
        """Candidates from whichever source is in use."""
        source: PaidOrderSource = self.mirror if self._mirror_ready(session) else self.chain
        return source.candidates(session, min_deadline=min_deadline, limit=limit)
