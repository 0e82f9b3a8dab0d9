"""Helpers of the delivery tests: buying with wallet-derived keys and checking the chain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.gateway.models import ChainTx
from backend.keys import next_order_key, public_key_bytes
from backend.models import Release as ReleaseRow
from backend.release import verify_release_onchain
from backend.release_store import get_release
from contracts.client import EscrowClient
from contracts.encoding import Order


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs; the database keeps its commits."""


def crash_at(target: str, times: int = 1) -> Callable[[str], None]:
    """A crash hook that dies at the crash point `target`, the first `times` times it is hit."""
    left = [times]

    def hook(point: str) -> None:
        if point == target and left[0] > 0:
            left[0] -= 1
            raise Crash(point)

    return hook


@dataclass
class Bought:
    """An order and the buyer's key for it."""

    oid: int
    order: Order
    buyer: LocalAccount
    key: PrivateKey


def buy(
    escrow: EscrowClient, buyer: LocalAccount, listing_id: int, quantity: int, price: int = 10**15
) -> Bought:
    """Buy with a wallet-derived order key."""
    key, _ = next_order_key(escrow, buyer)
    oid, order, _ = escrow.buy(
        buyer, listing_id, quantity, max_unit_price=price, buyer_pubkey=public_key_bytes(key)
    )
    return Bought(oid, order, buyer, key)


def delivered_events(escrow: EscrowClient, from_block: int = 0) -> dict[int, list[str]]:
    """Every OrderDelivered on-chain: order id -> digests (0x hex), in chain order."""
    topic = "0x" + escrow.codec.topic("OrderDelivered").hex()
    out: dict[int, list[str]] = defaultdict(list)
    for raw in escrow.logs(from_block, "latest", [topic]):
        ev = escrow.codec.decode_log(raw)
        assert ev is not None
        out[int(ev.args["orderId"])].append("0x" + bytes(ev.args["releaseDigest"]).hex())
    return dict(out)


def assert_delivered_once(
    escrow: EscrowClient, sessions: sessionmaker[Session], orders: list[Bought]
) -> None:
    """Each order: exactly one OrderDelivered, whose digest is the stored release's, which the
    buyer opens and verifies against the chain."""
    events = delivered_events(escrow)
    with sessions() as session:
        for b in orders:
            row = session.get(ReleaseRow, b.oid)
            assert row is not None and row.state == "confirmed", (b.oid, row and row.state)
            assert events.get(b.oid) == [row.digest], b.oid
            verified = verify_release_onchain(get_release(session, b.oid), b.key, escrow)
            assert len(verified.codes) == b.order.quantity


def release_states(sessions: sessionmaker[Session]) -> dict[int, str]:
    """Every stored release's state by order id."""
    with sessions() as session:
        return {
            int(oid): state
            for oid, state in session.execute(select(ReleaseRow.order_id, ReleaseRow.state))
        }


def sealed_bytes(sessions: sessionmaker[Session]) -> dict[int, bytes]:
    """Every stored release's sealed bytes by order id."""
    with sessions() as session:
        return {
            int(oid): bytes(sealed)
            for oid, sealed in session.execute(select(ReleaseRow.order_id, ReleaseRow.sealed))
        }


@dataclass(frozen=True)
class DeliverTx:
    """What a test reads of one ``deliver`` intent of the chain gateway."""

    key: str
    state: str
    order_count: int
    nonce: int | None
    tx_hash: str | None
    hashes: list[str]
    max_fee: int | None
    raw_tx: bytes | None


def deliver_txs(sessions: sessionmaker[Session]) -> list[DeliverTx]:
    """Every ``deliver`` intent in the gateway's table, oldest first."""
    with sessions() as session:
        rows = session.scalars(
            select(ChainTx).where(ChainTx.intent == "deliver").order_by(ChainTx.id)
        ).all()
        return [
            DeliverTx(
                key=r.key,
                state=str(r.state),
                order_count=len([s for s in r.subjects.split(",") if s]),
                nonce=r.nonce,
                tx_hash=r.tx_hash,
                hashes=[h for h in r.hashes.split(",") if h],
                max_fee=None if r.max_fee is None else int(r.max_fee),
                raw_tx=None if r.raw_tx is None else bytes(r.raw_tx),
            )
            for r in rows
        ]
