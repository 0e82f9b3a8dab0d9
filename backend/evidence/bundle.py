"""Build an order's evidence bundle: one canonical JSON document, ERC-1497 compatible.

    facts = gather_facts(view, order_id, hints=Hints(paid_block=...))
    data = build_bundle(view, order_id, release=release, buyer_secret=secret)

The bundle holds the listing; the batches holding the order's codes with the transactions that
committed them; the order, its code indexes and the buy transaction; the delivery transaction
and its digest; the sealed release (base64, as the ERC-1497 ``fileURI``) and release v2's public
parts; per code its commitment and Merkle proof; block number, hash and timestamp of every
transaction cited; the dispute, evidence and ruling events; and the parties' additions. The
format, canonicalization and ``selfHash`` are specified in docs/PROTOCOL.md ("Evidence bundle").

Everything but the release and the additions is read from the chain. The release too, when the
order was delivered with ``deliverOnChain``: its ReleasePublished log (in the delivering
transaction) then gives the sealed bytes and public parts, whatever release the caller passed,
and the section says so (``source: chain``, ``published``: the log), so a bundle needs nothing
but a node. Otherwise the release comes from the supplier's backend (`backend.release.Release`)
or from the buyer's saved copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.evidence import canonical
from backend.evidence.chainview import BlockInfo, ChainView, FoundLog, hex32
from backend.evidence.derive import (
    DeriveError,
    Facts,
    Inputs,
    SupplierClaim,
    assemble,
    cited_logs,
    published_release,
    release_section,
)
from backend.evidence.errors import BundleBuildError
from backend.evidence.schema import EvidenceBundle, ReleaseSection
from contracts.encoding import split_order_id

if TYPE_CHECKING:
    from backend.release import Release


@dataclass(frozen=True)
class Hints:
    """Where to look for an order's logs (from the SQL mirror); 0 means "scan from block 0".

    Attributes:
        paid_block: The block holding the order's OrderPaid.
        listing_block: The block holding the listing's ListingCreated.
    """

    paid_block: int = 0
    listing_block: int = 0


@dataclass(frozen=True)
class Built:
    """A finished bundle.

    Attributes:
        data: The canonical bytes (write these to the file).
        bundle: The parsed document.
        bundle_hash: keccak256 of the document without ``selfHash``: what a ruling cites.
    """

    data: bytes
    bundle: EvidenceBundle
    bundle_hash: bytes

    @property
    def self_hash(self) -> str:
        """The ERC-1497 ``selfHash``."""
        return self.bundle.self_hash


def _one(found: list[FoundLog], what: str) -> FoundLog:
    if not found:
        raise BundleBuildError(f"{what} is not on this chain; check the escrow and the order id")
    return found[0]


def gather_facts(
    view: ChainView, order_id: int, *, hints: Hints | None = None, as_of: BlockInfo | None = None
) -> Facts:
    """Read what the chain says about an order, as of `as_of` (default: the latest block).

    Raises:
        BundleBuildError: the order, its listing or a batch is not on this escrow.
    """
    hints = hints or Hints()
    as_of = as_of or view.head()
    listing_id, first = split_order_id(order_id)
    oid_topic = hex32(order_id.to_bytes(32, "big"))
    paid = _one(
        view.find_logs([view.topic("OrderPaid"), oid_topic], hints.paid_block, as_of.number),
        f"order {order_id} (no OrderPaid on escrow {view.escrow})",
    )
    lid_topic = hex32(listing_id.to_bytes(32, "big"))
    created = _one(
        view.find_logs(
            [view.topic("ListingCreated"), lid_topic],
            min(hints.listing_block, paid.block_number),
            paid.block_number,
        ),
        f"listing {listing_id}",
    )
    meta = next(
        (
            f
            for f in view.tx(created.tx).logs
            if f.name == "MetaEvidence" and int(f.args["_metaEvidenceID"]) == listing_id
        ),
        None,
    )
    if meta is None:
        raise BundleBuildError(f"listing {listing_id} has no MetaEvidence log in {created.tx}")
    quantity = int(paid.args["quantity"])
    indexes = range(first, first + quantity)
    batches = [
        b
        for b in view.find_logs(
            [view.topic("BatchCommitted"), lid_topic], created.block_number, paid.block_number
        )
        if any(
            int(b.args["firstIndex"]) <= i < int(b.args["firstIndex"]) + int(b.args["count"])
            for i in indexes
        )
    ]
    order_logs = view.order_logs(order_id, paid.block_number, as_of.number)
    facts = Facts(
        chain_id=view.chain_id(),
        escrow=view.escrow,
        escrow_code_hash=view.code_hash(),
        as_of=as_of,
        listing_created=created,
        meta_evidence=meta,
        batches=batches,
        order_logs=order_logs,
        stored_hash=view.order_hash_at(as_of, order_id),
    )
    fill_blocks(view, facts)
    return facts


def fill_blocks(view: ChainView, facts: Facts) -> None:
    """Fetch the receipt and block of every transaction the facts cite.

    Raises:
        FactMissing: the chain lacks one of them.
    """
    for log in cited_logs(facts):
        tx = view.tx(log.tx)
        facts.txs[tx.hash] = tx
        facts.blocks[tx.block_hash] = view.block(tx.block_hash)


def release_from_backend(release: Release) -> tuple[bytes, ReleaseSection]:
    """The sealed bytes and public section of a release fetched from the backend (adapter over
    `backend.release.Release`, whose manifest gives per code its commitment and proof)."""
    section = release_section(
        element_root=release.element_root,
        codes=[(c.index, c.commitment, c.batch_index, c.proof) for c in release.codes],
        key_hash=bytes(release.key_hash) if release.key_hash is not None else None,
    )
    return bytes(release.sealed), section


def build_bundle(
    view: ChainView,
    order_id: int,
    *,
    release: Release | None = None,
    sealed: bytes | None = None,
    release_public: ReleaseSection | None = None,
    buyer_secret: bytes | None = None,
    supplier_codes: list[SupplierClaim] | None = None,
    hints: Hints | None = None,
    as_of: BlockInfo | None = None,
) -> Built:
    """Build and seal an order's bundle.

    An order delivered with ``deliverOnChain`` takes its release from the ReleasePublished log,
    in place of any given: the given one can only be the same bytes (both hash to the digest).

    Args:
        view: The chain and escrow.
        order_id: The order.
        release: The sealed release as the backend serves it (or pass `sealed` and
            `release_public` instead); not needed when the chain published it.
        sealed: The sealed release's bytes.
        release_public: Its public section (element root, per-code commitments and proofs).
        buyer_secret: The buyer's per-order X25519 secret (32 bytes), to open the release.
        supplier_codes: The codes the supplier says it sent.
        hints: Where the order's logs are, from the mirror.
        as_of: The block to pin the bundle to (default: the latest).

    Raises:
        BundleBuildError: the order is not on this escrow, or the facts do not make a bundle.
    """
    if release is not None:
        sealed, release_public = release_from_backend(release)
    if (sealed is None) != (release_public is None):
        raise BundleBuildError("give the sealed bytes together with the release's public parts")
    if buyer_secret is not None and len(buyer_secret) != 32:
        raise BundleBuildError("the buyer's secret is a 32-byte X25519 private key")
    facts = gather_facts(view, order_id, hints=hints, as_of=as_of)
    on_chain = published_release(facts, order_id)
    if on_chain is not None:
        sealed, release_public = on_chain
    inputs = Inputs(
        sealed=sealed,
        release=release_public,
        buyer_secret=buyer_secret,
        supplier_codes=supplier_codes,
    )
    try:
        document = assemble(facts, order_id, inputs)
    except DeriveError as exc:
        raise BundleBuildError(f"order {order_id}: {exc}") from exc
    data = canonical.seal(document)
    bundle = EvidenceBundle.model_validate(canonical.loads(data))
    return Built(data=data, bundle=bundle, bundle_hash=canonical.bundle_hash(canonical.loads(data)))
