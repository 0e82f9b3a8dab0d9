"""Recover a buyer's codes from the chain alone (issue 16): no backend, no database, no API.

Every order of a listing that called ``requireOnChainRelease`` is delivered with
``deliverOnChain``, which puts the sealed release in the delivery transaction's
``ReleasePublished`` event. A buyer who keeps the wallet therefore needs only a JSON-RPC node and
the escrow's address to get back what it paid for:

1. `check_escrow`: the address holds a CodeEscrow on this chain (code, and views that answer);
2. `recover`: find the wallet's ``OrderPaid`` events (``buyer`` is an indexed topic), then the
   ``OrderDelivered``, ``OrderRefunded`` and ``ReleasePublished`` events of those orders, read in
   bounded block ranges (`SCAN_STEP` blocks a request, progress reported through a callback);
3. per delivered order: re-derive its key from the wallet (`backend.keys.derive_order_key`, the
   same signature the buy used), rebuild the release (`backend.release.release_from_published`,
   batch roots from the escrow's storage) and check it (`backend.release.verify_release`: the
   digest in OrderDelivered, the box opening, each code against its commitment and Merkle proof
   under the on-chain root).

Each order ends in one `OrderRecovery`: recovered (its codes), not delivered (yet, or refunded),
delivered off-chain (no release on the chain: its codes live only with the platform), or failed
(why). One order failing never stops the others. No message ever holds a plaintext code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from eth_utils import to_checksum_address

from backend.errors import BackendError, KeyDerivationError, ReleaseInvalid
from backend.keys import derive_order_key, public_key_bytes
from backend.release import ReleasedCode, release_from_published, verify_release
from contracts.chain import get_logs
from contracts.encoding import PublishedRelease, decode_release_proofs, split_order_id
from contracts.errors import ChainError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from nacl.public import PrivateKey

    from contracts.client import EscrowClient
    from contracts.events import DecodedLog

#: Most blocks one log request spans (every provider accepts it; `contracts.chain.LOG_STEP`).
SCAN_STEP = 5_000
#: Most order ids one log request filters on (a topic list; providers cap its length).
IDS_PER_REQUEST = 100

Status = Literal["recovered", "not-delivered", "off-chain", "failed"]
#: Called after each block range: (stage, blocks scanned, blocks in all). The stages are
#: ``"orders"`` (the wallet's OrderPaid events) and ``"deliveries"`` (its orders' deliveries).
Progress = Callable[[str, int, int], None]


class NoEscrowError(BackendError):
    """The address holds no kameng escrow on the node's chain."""


@dataclass(frozen=True)
class OrderRecovery:
    """What the chain gives back for one order. Its `repr` never shows a code.

    Attributes:
        order_id: The order.
        listing_id: Its listing.
        quantity: How many codes it paid for.
        status: ``recovered``, ``not-delivered``, ``off-chain`` or ``failed``.
        detail: One line for a person, saying what it means and what to do.
        reason: Why it failed: a `ReleaseInvalid` reason (``cannot-open``, ``digest-mismatch``,
            ``commitment-mismatch``, ...) or ``no-derived-key``; None otherwise.
        codes: The verified codes when recovered, in index order.
        paid_block: The block of its OrderPaid.
        delivery_tx: The transaction that delivered it, if any.
    """

    order_id: int
    listing_id: int
    quantity: int
    status: Status
    detail: str
    reason: str | None = None
    codes: list[ReleasedCode] = field(default_factory=list, repr=False)
    paid_block: int = 0
    delivery_tx: str | None = None


@dataclass(frozen=True)
class Recovery:
    """The outcome of `recover` for one wallet.

    Attributes:
        chain_id: The chain read.
        escrow: The escrow read.
        buyer: The wallet.
        from_block: The first block scanned.
        to_block: The last block scanned (the latest when the scan began).
        orders: One entry per order of the wallet, in order of payment.
    """

    chain_id: int
    escrow: str
    buyer: str
    from_block: int
    to_block: int
    orders: list[OrderRecovery]

    def count(self, status: Status) -> int:
        """How many orders ended in `status`."""
        return sum(1 for o in self.orders if o.status == status)

    def as_json(self) -> dict[str, Any]:
        """Everything as plain JSON values, each code in clear with its salt (which, with the
        commitment, proves the code on-chain): write it to a private file only."""
        return {
            "chain_id": self.chain_id,
            "escrow": self.escrow,
            "buyer": self.buyer,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "orders": [
                {
                    "order_id": o.order_id,
                    "listing_id": o.listing_id,
                    "quantity": o.quantity,
                    "status": o.status,
                    "reason": o.reason,
                    "detail": o.detail,
                    "paid_block": o.paid_block,
                    "delivery_tx": o.delivery_tx,
                    "codes": [
                        {
                            "index": c.index,
                            "code": c.text(),
                            "salt": "0x" + c.salt.hex(),
                            "commitment": "0x" + c.commitment.hex(),
                            "expires_at": c.expires_at,
                        }
                        for c in o.codes
                    ],
                }
                for o in self.orders
            ],
        }


def check_escrow(escrow: EscrowClient) -> None:
    """Make sure `escrow.address` holds a CodeEscrow on the node's chain: code is there and the
    escrow answers (its listing count through ``extsload``, and ``MAX_ON_CHAIN_QUANTITY``).

    Raises:
        NoEscrowError: it does not (a wrong chain or a wrong address), said in one line.
    """
    chain_id = escrow.chain.chain_id
    wrong = NoEscrowError(
        f"no kameng escrow at {escrow.address} on chain {chain_id}: wrong chain or wrong address"
    )
    if not bytes(escrow.w3.eth.get_code(escrow.address)):
        raise wrong
    try:
        escrow.call("listingCount")
        escrow.call("MAX_ON_CHAIN_QUANTITY")
    except Exception as exc:  # noqa: BLE001 - any failure of a view means it is not an escrow
        raise wrong from exc


def deployment_block(escrow: EscrowClient, latest: int) -> int:
    """The first block at which the escrow has code, by bisection over ``eth_getCode`` (about
    log2(latest) reads), so a scan need not start at block 0. A node that keeps no old state
    (it answers old reads with an error) gets 0: the scan then starts at the genesis."""
    lo, hi = 0, latest
    try:
        while lo < hi:
            mid = (lo + hi) // 2
            if bytes(escrow.w3.eth.get_code(escrow.address, mid)):
                hi = mid
            else:
                lo = mid + 1
    except Exception:  # noqa: BLE001 - a pruned node refuses old state; scan everything instead
        return 0
    return lo


def _topic(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


class _Reader:
    """Reads the escrow's logs in bounded block ranges. A range the node refuses (many public
    nodes cap the blocks or the results of one request) is halved and asked again, down to one
    block, and the smaller step is kept for the rest of the reads."""

    def __init__(self, escrow: EscrowClient, step: int, progress: Progress | None) -> None:
        self.escrow = escrow
        self.step = max(1, step)
        self.progress = progress

    def _logs(self, start: int, end: int, topics: list[Any]) -> list[dict[str, Any]] | None:
        """The raw logs of one range, or None when the node refused it and the step was
        halved (ask again). Raises ChainError when even one block is refused."""
        try:
            return get_logs(
                self.escrow.chain, self.escrow.address, start, end, topics, end - start + 1
            )
        except ChainError:
            if end == start:
                raise
            self.step = max(1, (end - start + 1) // 2)
            return None

    def scan(
        self, from_block: int, to_block: int, filters: Sequence[list[Any]], stage: str
    ) -> list[DecodedLog]:
        """Decoded logs matching any of the topic `filters` (one request per filter and
        range), in chain order; progress is reported after each range."""
        out: list[DecodedLog] = []
        total = max(0, to_block - from_block + 1)
        start = from_block
        while start <= to_block:
            end = min(to_block, start + self.step - 1)
            found: list[dict[str, Any]] = []
            for topics in filters:
                got = self._logs(start, end, topics)
                if got is None:
                    break
                found.extend(got)
            else:
                events = [e for e in map(self.escrow.codec.decode_log, found) if e is not None]
                out.extend(sorted(events, key=lambda e: (e.block_number, e.log_index)))
                if self.progress is not None:
                    self.progress(stage, end - from_block + 1, total)
                start = end + 1
        return out

    def published(self, delivered: dict[int, DecodedLog]) -> dict[int, PublishedRelease]:
        """The ReleasePublished releases of delivered orders, decoded as
        `EscrowClient.published_releases` does. deliverOnChain emits each in its
        OrderDelivered's transaction, so only the blocks that hold deliveries are read."""
        out: dict[int, PublishedRelease] = {}
        ids = sorted(delivered, key=lambda i: delivered[i].block_number)
        for group in _chunks(ids, IDS_PER_REQUEST):
            blocks = sorted({delivered[i].block_number for i in group})
            lo = blocks[0]
            while lo <= blocks[-1]:
                hi = min(lo + self.step - 1, blocks[-1])
                try:
                    out.update(self.escrow.published_releases(group, lo, hi))
                except ChainError:
                    if hi == lo:
                        raise
                    self.step = max(1, (hi - lo + 1) // 2)
                    continue
                lo = next((b for b in blocks if b > hi), blocks[-1] + 1)
        return out


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def order_key(escrow: EscrowClient, account: LocalAccount, paid: DecodedLog) -> PrivateKey:
    """Re-derive an order's key from the wallet, as `backend.keys.recover_order_key` does, from
    an OrderPaid event already in hand (the nonce of the transaction that emitted it).

    Raises:
        KeyDerivationError: the order was paid with a key not derived from that nonce.
    """
    tx = escrow.w3.eth.get_transaction(paid.tx_hash)  # type: ignore[arg-type]
    nonce = int(tx["nonce"])
    key = derive_order_key(
        account, chain_id=escrow.chain.chain_id, escrow=escrow.address, nonce=nonce
    )
    if public_key_bytes(key) != bytes(paid.args["buyerPubKey"]):
        raise KeyDerivationError(
            f"order {int(paid.args['orderId'])} was paid with a key not derived from this "
            f"wallet at nonce {nonce}: only the key it was made with opens it"
        )
    return key


class _Batches:
    """On-chain batches, each read once: (root, first index, count) by (listing, batch)."""

    def __init__(self, escrow: EscrowClient) -> None:
        self.escrow = escrow
        self.seen: dict[tuple[int, int], tuple[bytes, int, int]] = {}

    def of(self, listing_id: int, indexes: Iterable[int]) -> dict[int, tuple[bytes, int, int]]:
        out = {}
        for b in indexes:
            if (listing_id, b) not in self.seen:
                self.seen[(listing_id, b)] = self.escrow.batch(listing_id, b)
            out[b] = self.seen[(listing_id, b)]
        return out


def _open(
    escrow: EscrowClient,
    account: LocalAccount,
    paid: DecodedLog,
    delivered: DecodedLog,
    published: PublishedRelease,
    batches: _Batches,
) -> list[ReleasedCode]:
    """Rebuild one published release and verify it; raises what `verify_release` raises."""
    oid = int(paid.args["orderId"])
    listing_id, _ = split_order_id(oid)
    quantity = int(paid.args["quantity"])
    key = order_key(escrow, account, paid)
    try:
        cited = {b for _, _, b, _ in decode_release_proofs(published.proofs)}
    except ValueError:
        cited = set()  # release_from_published says why, with the order's id
    onchain = batches.of(listing_id, cited)
    release = release_from_published(
        published,
        order_id=oid,
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        buyer=to_checksum_address(paid.args["buyer"]),
        quantity=quantity,
        batch_roots={b: root for b, (root, _, _) in onchain.items()},
        tx_hash=delivered.tx_hash,
    )
    verified = verify_release(
        release,
        key,
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        onchain_digest=bytes(delivered.args["releaseDigest"]),
        quantity=quantity,
        batches=onchain,
    )
    return verified.codes


def _outcome(
    escrow: EscrowClient,
    account: LocalAccount,
    paid: DecodedLog,
    delivered: DecodedLog | None,
    refunded: bool,
    published: PublishedRelease | None,
    batches: _Batches,
) -> OrderRecovery:
    oid = int(paid.args["orderId"])
    listing_id, _ = split_order_id(oid)
    base: dict[str, Any] = {
        "order_id": oid,
        "listing_id": listing_id,
        "quantity": int(paid.args["quantity"]),
        "paid_block": paid.block_number,
    }
    if delivered is None:
        detail = (
            "it was refunded, never delivered: nothing to recover"
            if refunded
            else "the supplier has not delivered it yet: nothing to recover until it does "
            "(after its delivery deadline the payment can be reclaimed with refund)"
        )
        return OrderRecovery(status="not-delivered", detail=detail, **base)
    base["delivery_tx"] = delivered.tx_hash
    if published is None:
        return OrderRecovery(
            status="off-chain",
            detail="no release on the chain, so its codes live only with the platform (fetch "
            "them with `kameng buyer fetch` while it runs)",
            **base,
        )
    try:
        codes = _open(escrow, account, paid, delivered, published, batches)
    except ReleaseInvalid as exc:
        return OrderRecovery(
            status="failed",
            reason=exc.reason,
            detail=f"{exc}; do not confirm it, dispute it",
            **base,
        )
    except KeyDerivationError as exc:
        return OrderRecovery(status="failed", reason="no-derived-key", detail=str(exc), **base)
    return OrderRecovery(
        status="recovered",
        codes=codes,
        detail=f"{len(codes)} code(s) opened and checked against the chain",
        **base,
    )


def recover(
    escrow: EscrowClient,
    account: LocalAccount,
    from_block: int | None = None,
    *,
    progress: Progress | None = None,
    step: int = SCAN_STEP,
) -> Recovery:
    """Recover every order the wallet paid on this escrow from the chain alone.

    Args:
        escrow: The escrow, on the node to read (`contracts.chain.rpc_chain`).
        account: The buyer's wallet (it signs the key messages locally; nothing is sent).
        from_block: The first block to scan; None finds the escrow's deployment block.
        progress: Called after each block range read (see `Progress`).
        step: Most blocks a log request spans (halved while the node refuses a range).

    Raises:
        NoEscrowError: the address holds no escrow on this chain.
        ChainError: the node refused a read (a log read even for one block).
    """
    check_escrow(escrow)
    latest = int(escrow.w3.eth.block_number)
    start = deployment_block(escrow, latest) if from_block is None else from_block
    codec = escrow.codec
    buyer_topic = "0x" + bytes(12).hex() + account.address[2:].lower()
    reader = _Reader(escrow, step, progress)
    paid = reader.scan(
        start, latest, [["0x" + codec.topic("OrderPaid").hex(), None, buyer_topic]], "orders"
    )
    paid = [p for p in paid if p.name == "OrderPaid"]
    outcome = Recovery(
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        buyer=account.address,
        from_block=start,
        to_block=latest,
        orders=[],
    )
    if not paid:
        return outcome
    ids = [int(p.args["orderId"]) for p in paid]
    names = ["0x" + codec.topic(n).hex() for n in ("OrderDelivered", "OrderRefunded")]
    delivered: dict[int, DecodedLog] = {}
    refunded: set[int] = set()
    for ev in reader.scan(
        min(p.block_number for p in paid),
        latest,
        [[names, [_topic(i) for i in group]] for group in _chunks(ids, IDS_PER_REQUEST)],
        "deliveries",
    ):
        if ev.name == "OrderDelivered":
            delivered[int(ev.args["orderId"])] = ev
        elif ev.name == "OrderRefunded":
            refunded.add(int(ev.args["orderId"]))
    published = reader.published(delivered)
    batches = _Batches(escrow)
    for p in paid:
        oid = int(p.args["orderId"])
        outcome.orders.append(
            _outcome(
                escrow,
                account,
                p,
                delivered.get(oid),
                oid in refunded,
                published.get(oid),
                batches,
            )
        )
    return outcome


__all__ = [
    "NoEscrowError",
    "OrderRecovery",
    "Recovery",
    "check_escrow",
    "deployment_block",
    "order_key",
    "recover",
]
