"""The backend's side of evidence: build an order's bundle from the chain, the stored release and
the parties' additions; accept additions after checking them against the chain.

This is the adapter between the evidence package and other owners' modules: the mirror
(`indexer.models`, for who the parties are and in which blocks their logs are: `MirrorIndex`
makes every chain read of a request a handful of one-block queries, however long the chain),
the sealed releases
(`backend.models.Release` through `backend.release_store.release_from_row`) and the vault
(`backend.models.Code`, decrypted with `backend.vault.crypto.CodeCipher`, for a supplier that
asks to attach the codes it sent). The bundle itself only ever states chain facts and the
parties' inputs; the database only says where to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nacl.public import PrivateKey
from sqlalchemy import select

from backend.evidence.bundle import Built, Hints, build_bundle
from backend.evidence.cache import additions_digest
from backend.evidence.chainview import ERC1497_ORDER_EVENTS, ORDER_EVENTS, ChainView, hex32
from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import (
    AdditionRejected,
    FreshSignatureRequired,
    MirrorBehind,
    NotAParty,
    NotDisputed,
    UnknownOrder,
)
from backend.evidence.store import AdditionsStore, record_disclosure
from contracts.encoding import OrderState, split_order_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from backend.evidence.cache import BundleCache
    from backend.release import Release
    from contracts.chain import Chain
    from indexer import models as mirror_models

#: Release rows whose sealed bytes may be the delivered ones.
USABLE_RELEASE_STATES = ("prepared", "sent", "confirmed")

#: Most blocks past the mirror's checkpoint one request scans; further behind, it answers 503.
MAX_UNINDEXED_BLOCKS = 256


def _spans(blocks: set[int], low: int, high: int) -> list[tuple[int, int]]:
    """`blocks` within ``low..high`` as inclusive ranges of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for b in sorted(x for x in blocks if low <= x <= high):
        if out and out[-1][1] == b - 1:
            out[-1] = (out[-1][0], b)
        else:
            out.append((b, b))
    return out


def _topic_set(topic: Any) -> set[str]:
    if topic is None:
        return set()
    return {str(t).lower() for t in (topic if isinstance(topic, list) else [topic])}


class MirrorIndex:
    """Where an order's, a listing's and its batches' logs are, from the SQL mirror.

    For the topic filters the evidence code uses (an order's events by order id, a listing's
    ``ListingCreated`` and ``BatchCommitted`` by listing id) it names the blocks the mirror
    recorded them in, plus every block past the mirror's checkpoint; for any other filter, the
    whole range. The logs are still read from the node, so the mirror can only make a bundle
    miss a log it failed to record, never add one.
    """

    def __init__(self, session: Session, view_topics: dict[str, str], indexed_to: int) -> None:
        """Index over `session`'s mirror, which covers blocks up to `indexed_to`."""
        self.session = session
        self.topics = {v.lower(): k for k, v in view_topics.items()}
        self.indexed_to = indexed_to

    def _names(self, topic0: Any) -> set[str]:
        return {self.topics.get(t, "?") for t in _topic_set(topic0)}

    def _known_blocks(self, topics: list[Any]) -> set[int] | None:
        from indexer import models as mirror

        names = self._names(topics[0]) if topics else {"?"}
        ids = _topic_set(topics[1]) if len(topics) > 1 else set()
        if names <= set(ERC1497_ORDER_EVENTS) and len(topics) > 2:
            ids = _topic_set(topics[2])  # ERC-1497's events carry the order id second
        if len(ids) != 1 or "?" in names:
            return None
        key = int(next(iter(ids)), 16)
        if names <= set(ORDER_EVENTS) | set(ERC1497_ORDER_EVENTS):
            return set(
                self.session.scalars(
                    select(mirror.OrderEvent.block_number).where(mirror.OrderEvent.order_id == key)
                )
            )
        if names == {"ListingCreated"}:
            row = self.session.get(mirror.Listing, key)
            return set() if row is None else {int(row.block_number)}
        if names == {"BatchCommitted"}:
            return set(
                self.session.scalars(
                    select(mirror.Batch.block_number).where(mirror.Batch.listing_id == key)
                )
            )
        return None

    def ranges(self, topics: list[Any], from_block: int, to_block: int) -> list[tuple[int, int]]:
        """The ranges to ask the node for (see `backend.evidence.chainview.LogIndex`)."""
        known = self._known_blocks(topics)
        if known is None:
            return [(from_block, to_block)]
        spans = _spans(known, from_block, min(to_block, self.indexed_to))
        tail = max(from_block, self.indexed_to + 1)
        if tail <= to_block:
            spans.append((tail, to_block))
        return spans


def mirror_view(session: Session, chain: Chain, escrow: str) -> ChainView:
    """A `ChainView` that asks the node only where the mirror says the logs are.

    Raises:
        MirrorBehind: the mirror has not started, or is more than `MAX_UNINDEXED_BLOCKS` blocks
            behind the node.
    """
    from indexer import models as mirror

    view = ChainView(chain, escrow)
    row = session.get(mirror.Checkpoint, (view.chain_id(), view.escrow))
    head = int(chain.w3.eth.block_number)
    if row is None or head - int(row.block_number) > MAX_UNINDEXED_BLOCKS:
        behind = "has not started" if row is None else f"is {head - int(row.block_number)} blocks"
        raise MirrorBehind(
            f"the indexer {behind} behind the chain; evidence is built from its mirror, so "
            "retry when it has caught up"
        )
    topics = {name: view.topic(name) for name in (*ORDER_EVENTS, *ERC1497_ORDER_EVENTS)}
    topics |= {name: view.topic(name) for name in ("ListingCreated", "BatchCommitted")}
    view.index = MirrorIndex(session, topics, int(row.block_number))
    return view


def order_row(session: Session, order_id: int) -> mirror_models.Order:
    """The mirror's row of an order.

    Raises:
        UnknownOrder: the mirror does not know it (not paid, or paid after its checkpoint).
    """
    from indexer import models as mirror

    row = session.get(mirror.Order, order_id)
    if row is None:
        raise UnknownOrder(
            f"unknown order {order_id}: the escrow's mirror has no such order (if it was paid "
            "in the last few seconds, retry shortly)"
        )
    return row


def hints_for(session: Session, order_id: int) -> Hints:
    """Block hints from the mirror (the order's payment block, the listing's creation block).

    Raises:
        UnknownOrder: the mirror does not know the order.
    """
    from indexer import models as mirror

    row = order_row(session, order_id)
    listing = session.get(mirror.Listing, split_order_id(order_id)[0])
    return Hints(
        paid_block=int(row.paid_block),
        listing_block=int(listing.block_number) if listing is not None else 0,
    )


def parties(session: Session, order_id: int) -> tuple[str, str]:
    """The order's (buyer, supplier), from the mirror.

    Raises:
        UnknownOrder: the mirror does not know the order.
    """
    row = order_row(session, order_id)
    return row.buyer, row.supplier


def was_disputed(session: Session, order_id: int) -> bool:
    """Whether the order is disputed now or was ever disputed (the mirror's history says).

    Raises:
        UnknownOrder: the mirror does not know the order.
    """
    from indexer import models as mirror

    row = order_row(session, order_id)
    if int(row.state) in (OrderState.DISPUTED, OrderState.RESOLVED):
        return True
    return (
        session.scalar(
            select(mirror.OrderEvent.id)
            .where(
                mirror.OrderEvent.order_id == order_id, mirror.OrderEvent.name == "DisputeOpened"
            )
            .limit(1)
        )
        is not None
    )


def stored_release(session: Session, order_id: int) -> Release | None:
    """The sealed release the backend stored for an order, if it may be the delivered one."""
    from backend.models import Release as ReleaseRow
    from backend.models import VaultMeta
    from backend.release_store import release_from_row

    row = session.get(ReleaseRow, order_id)
    meta = session.get(VaultMeta, 1)
    if row is None or meta is None or row.state not in USABLE_RELEASE_STATES:
        return None
    return release_from_row(row, meta.chain_id, meta.escrow)


def bundle_for(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    with_additions: bool = True,
    cache: BundleCache | None = None,
    parties_shown: tuple[str, ...] = ("buyer", "supplier"),
) -> Built:
    """Build an order's bundle from the chain, the stored release and the stored additions of
    `parties_shown` (none without `with_additions`), pinned to the latest block (or take it
    from `cache` if built for that block already).

    Raises:
        UnknownOrder: the mirror does not know the order.
        BundleBuildError: the chain lacks a fact the bundle needs.
    """
    hints = hints_for(session, order_id)
    shown = parties_shown if with_additions else ()
    secret = store.buyer_secret(session, order_id) if "buyer" in shown else None
    codes = store.supplier_codes(session, order_id) if "supplier" in shown else None
    release = stored_release(session, order_id)
    as_of = view.head()
    key = (
        order_id,
        as_of.hash,
        additions_digest(secret, codes)
        + ("" if release is None else release.digest.hex())
        + "+"
        + ",".join(shown),
    )
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    if release is not None:
        delivered = view.find_logs(
            [view.topic("OrderDelivered"), hex32(order_id.to_bytes(32, "big"))],
            hints.paid_block,
            as_of.number,
        )
        if not delivered or bytes(delivered[-1].args["releaseDigest"]) != release.digest:
            release = None  # sealed but not (yet) the delivered release: nothing to bind
    built = build_bundle(
        view,
        order_id,
        release=release,
        buyer_secret=secret,
        supplier_codes=codes,
        hints=hints,
        as_of=as_of,
    )
    if cache is not None:
        cache.put(key, built)
    return built


def _paid(session: Session, view: ChainView, order_id: int) -> Any:
    """The order's OrderPaid log, read from the node in the block the mirror names.

    Raises:
        UnknownOrder: the mirror does not know the order, or the node has no such log there.
    """
    block = hints_for(session, order_id).paid_block
    found = view.find_logs(
        [view.topic("OrderPaid"), hex32(order_id.to_bytes(32, "big"))], block, block
    )
    if not found:
        raise UnknownOrder(f"unknown order {order_id}: no OrderPaid on {view.escrow}")
    return found[0]


def add_buyer_secret(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    buyer: str,
    secret: bytes,
) -> None:
    """Store the buyer's per-order secret after checking it is the order's key.

    Raises:
        AdditionRejected: the wallet is not the buyer, or the secret does not match the order's
            ``buyerPubKey`` on-chain.
    """
    if len(secret) != 32:
        raise AdditionRejected("the order secret is a 32-byte X25519 private key")
    if parties(session, order_id)[0] != buyer:
        raise NotAParty(f"only the buyer of order {order_id} may add its secret")
    args = _paid(session, view, order_id).args
    if bytes(PrivateKey(secret).public_key) != bytes(args["buyerPubKey"]):
        raise AdditionRejected(
            f"this secret is not the key of order {order_id}: its public key differs from the "
            "buyerPubKey paid with; derive it again from the wallet (kameng evidence "
            "--with-buyer-secret does)"
        )
    store.put_buyer_secret(session, order_id=order_id, buyer=buyer, secret=secret)
    record_disclosure(session, order_id=order_id, kind="buyer-secret", actor=buyer, codes=0)
    session.commit()


def codes_from_vault(
    session: Session, master_key: bytes, order_id: int, quantity: int
) -> list[SupplierClaim]:
    """The salts and codes the vault holds for an order's indexes (what an honest agent sent).

    Raises:
        AdditionRejected: the vault does not hold every code of the order.
    """
    from backend.models import Code
    from backend.vault.crypto import CodeCipher, EncryptedRecord

    listing_id, first = split_order_id(order_id)
    rows = session.scalars(
        select(Code)
        .where(
            Code.listing_id == listing_id,
            Code.code_index >= first,
            Code.code_index < first + quantity,
        )
        .order_by(Code.code_index)
    ).all()
    cipher = CodeCipher(master_key)
    out = []
    for row in rows:
        index = int(row.code_index)
        record = EncryptedRecord(row.ciphertext, row.nonce, row.wrapped_key, row.key_id)
        salt, code = cipher.decrypt(listing_id, index, record)
        out.append(SupplierClaim(index=index, salt=salt, code=code))
    return out


def add_supplier_codes(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    supplier: str,
    codes: list[SupplierClaim] | None,
    master_key: bytes | None = None,
    freshly_signed: bool = False,
) -> list[SupplierClaim]:
    """Store the codes the supplier says it sent (given, or read from the vault), and record
    the disclosure.

    The vault releases an order's codes (``codes=None``) only while the order is disputed, and
    only on a request the supplier's wallet signed itself (`freshly_signed`: a signed request
    naming this order, not a session token, so a stolen token cannot empty the vault).

    Raises:
        AdditionRejected: the order is unknown, the wallet is not the order's supplier, a code
            is outside the order, or (from the vault) the order is not disputed or the request
            was not signed by the wallet.
    """
    if parties(session, order_id)[1] != supplier:
        raise NotAParty(f"only the supplier of order {order_id} may add its codes")
    if codes is None:
        if int(order_row(session, order_id).state) != OrderState.DISPUTED:
            raise NotDisputed(
                f"order {order_id} is not disputed: the vault discloses an order's codes only "
                "while it is disputed, and only to its arbiters"
            )
        if not freshly_signed:
            raise FreshSignatureRequired(
                "the vault's codes are disclosed only on a request signed by the supplier's "
                "wallet itself (X-Kameng-Signature over this request, naming the order), not "
                "with a session token"
            )
    quantity = int(_paid(session, view, order_id).args["quantity"])
    _, first = split_order_id(order_id)
    wanted = range(first, first + quantity)
    from_vault = codes is None
    if codes is None:
        if master_key is None:
            raise AdditionRejected("give the codes, or ask for the vault's")
        codes = codes_from_vault(session, master_key, order_id, quantity)
        if len(codes) != quantity:
            raise AdditionRejected(
                f"this backend's vault holds {len(codes)} of the order's {quantity} codes"
            )
    if not codes or any(c.index not in wanted for c in codes):
        raise AdditionRejected(
            f"codes must be at the order's indexes {first}..{first + quantity - 1}"
        )
    if any(len(c.salt) != 32 or not 0 < len(c.code) <= 256 for c in codes):
        raise AdditionRejected("each salt is 32 bytes and each code 1 to 256 bytes")
    store.put_supplier_codes(session, order_id=order_id, supplier=supplier, codes=codes)
    record_disclosure(
        session,
        order_id=order_id,
        kind="vault-codes" if from_vault else "supplier-codes",
        actor=supplier,
        codes=len(codes),
    )
    session.commit()
    return codes
