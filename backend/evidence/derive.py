"""Sections of a bundle, derived from chain facts and a party's inputs.

The builder and the verifier share these functions: the builder derives every section from
facts it read and seals the result; the verifier reads the same facts from the chain (starting
from the references in the bundle), derives the sections again and compares them one by one.
A bundle therefore cannot state anything the chain does not, and what it says about the sealed
release follows from the release bytes and the buyer's secret by the same code either way.

Inputs that only a party holds (not derivable from the chain): the sealed release and its public
proof material (from the supplier's backend) unless the order was delivered with
``deliverOnChain``, the buyer's per-order secret, the supplier's salts and codes. Their claims
are checked separately (proofs under on-chain roots, the secret against the on-chain public
key, the release against the on-chain digest). A release the chain published (ReleasePublished,
in the delivering transaction) is derived from its log like any other section
(`published_release`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_utils import keccak, to_checksum_address
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from backend.evidence.canonical import keccak_multihash
from backend.evidence.chainview import BlockInfo, FoundLog, TxInfo, decode_reason, hex32, json_args
from backend.evidence.schema import (
    FORMAT,
    Additions,
    BadCodeProofSection,
    BatchSection,
    BlockRef,
    BuyerAddition,
    CodeProofSection,
    DeliverySection,
    DisputeSection,
    EventRecord,
    EvidenceItem,
    ListingSection,
    LogRef,
    OpenedCode,
    OpeningSection,
    OrderSection,
    OrderStruct,
    ReleaseSection,
    RulingSection,
    SupplierAddition,
    SupplierCode,
    TxRecord,
)
from backend.release import PAYLOAD_TAG, decode_payload
from contracts.client import apply_event, order_from_paid_event
from contracts.encoding import (
    Order,
    commitment,
    decode_release_proofs,
    element_leaf,
    keystream_xor,
    release_digest_v2,
    split_order_id,
)
from contracts.merkle import MerkleTree

#: The file type of the ERC-1497 file (the sealed release's raw bytes).
FILE_TYPE = "bin"
DATA_URI_PREFIX = "data:application/octet-stream;base64,"
OPEN_STATES = (1, 2, 3)


class DeriveError(Exception):
    """A section cannot be derived from the facts (the verifier reports it as a failed claim).

    Attributes:
        claim: The claim it breaks.
    """

    def __init__(self, claim: str, detail: str) -> None:
        self.claim = claim
        super().__init__(detail)


@dataclass
class Facts:
    """What the chain says about one order, gathered by `backend.evidence.bundle` or the
    verifier. Logs are escrow logs; blocks are keyed by hash."""

    chain_id: int
    escrow: str
    escrow_code_hash: bytes
    as_of: BlockInfo
    listing_created: FoundLog
    meta_evidence: FoundLog
    batches: list[FoundLog]
    order_logs: list[FoundLog]
    stored_hash: bytes
    txs: dict[str, TxInfo] = field(default_factory=dict)
    blocks: dict[str, BlockInfo] = field(default_factory=dict)

    def timestamp(self, log: FoundLog) -> int:
        """The timestamp of the block holding a log."""
        return self.blocks[log.block_hash].timestamp


@dataclass(frozen=True)
class SupplierClaim:
    """A code the supplier says it sent."""

    index: int
    salt: bytes
    code: bytes


@dataclass
class Inputs:
    """What the parties give: the release (public parts) and the additions."""

    sealed: bytes | None = None
    release: ReleaseSection | None = None
    buyer_secret: bytes | None = None
    supplier_codes: list[SupplierClaim] | None = None


def ref(log: FoundLog) -> LogRef:
    """The bundle's reference to a log."""
    return LogRef(tx=log.tx, log_index=log.log_index)


# ---------------------------------------------------------------- chain sections


def derive_listing(facts: Facts, listing_id: int) -> ListingSection:
    """The listing from its ListingCreated and MetaEvidence logs.

    Raises:
        DeriveError: the logs are not those of this listing.
    """
    created, meta = facts.listing_created, facts.meta_evidence
    if created.name != "ListingCreated" or int(created.args["listingId"]) != listing_id:
        raise DeriveError("listing", f"the cited log is not ListingCreated({listing_id})")
    if meta.name != "MetaEvidence" or int(meta.args["_metaEvidenceID"]) != listing_id:
        raise DeriveError("listing", f"the cited log is not MetaEvidence({listing_id})")
    a = created.args
    if meta.args["_evidence"] != a["metadataURI"] or meta.tx != created.tx:
        raise DeriveError("listing", "MetaEvidence does not repeat the listing's metadata URI")
    return ListingSection(
        listing_id=listing_id,
        supplier=to_checksum_address(a["supplier"]),
        sku=hex32(a["sku"]),
        token=to_checksum_address(a["token"]),
        unit_price=str(int(a["unitPrice"])),
        delivery_window=int(a["deliveryWindow"]),
        dispute_window=int(a["disputeWindow"]),
        bond_bps=int(a["bondBps"]),
        fee_bps=int(a["feeBps"]),
        metadata_uri=str(a["metadataURI"]),
        created=ref(created),
        meta_evidence=ref(meta),
    )


def derive_batches(facts: Facts, listing_id: int, indexes: Sequence[int]) -> list[BatchSection]:
    """The batches holding the order's indexes, in batch order.

    Raises:
        DeriveError: a cited log is not a batch of this listing, or an index is in no batch.
    """
    out = []
    for log in sorted(facts.batches, key=lambda b: int(b.args.get("batchIndex", 0))):
        if log.name != "BatchCommitted" or int(log.args["listingId"]) != listing_id:
            raise DeriveError(
                "batches", f"log {log.tx}#{log.log_index} is not a batch of listing {listing_id}"
            )
        a = log.args
        out.append(
            BatchSection(
                batch_index=int(a["batchIndex"]),
                root=hex32(a["root"]),
                first_index=int(a["firstIndex"]),
                count=int(a["count"]),
                committed=int(a["committed"]),
                event=ref(log),
            )
        )
    for i in indexes:
        if not any(b.first_index <= i < b.first_index + b.count for b in out):
            raise DeriveError("batches", f"code index {i} is in none of the cited batches")
    for b in out:
        if not any(b.first_index <= i < b.first_index + b.count for i in indexes):
            raise DeriveError("batches", f"batch {b.batch_index} holds none of the order's codes")
    return out


def rebuild_order(facts: Facts, order_id: int) -> tuple[Order, FoundLog]:
    """The order struct as of the bundle's block, rebuilt from its logs, and its OrderPaid.

    Raises:
        DeriveError: no OrderPaid for this order among the logs.
    """
    paid = [f for f in facts.order_logs if f.name == "OrderPaid"]
    if len(paid) != 1 or int(paid[0].args["orderId"]) != order_id:
        raise DeriveError("order.paid", f"order {order_id} has no OrderPaid log where cited")
    order = order_from_paid_event(paid[0].args)
    for log in facts.order_logs:
        if log.name in ("OrderPaid",) or "orderId" not in log.args:
            continue
        order = apply_event(order, log.name, log.args, facts.timestamp(log))
    return order, paid[0]


def struct_section(order: Order) -> OrderStruct:
    """The Order struct as the bundle writes it."""
    return OrderStruct(
        buyer=order.buyer,
        supplier=order.supplier,
        token=order.token,
        reseller=order.reseller,
        amount=str(order.amount),
        bond=str(order.bond),
        quantity=order.quantity,
        fee_bps=order.fee_bps,
        reseller_cut=str(order.reseller_cut),
        dispute_window=order.dispute_window,
        deadline=order.deadline,
        state=int(order.state),
        release_digest=hex32(order.release_digest),
    )


def derive_order(facts: Facts, order_id: int) -> OrderSection:
    """The order section: indexes, the buyer's public key, the struct and its stored hash."""
    order, paid = rebuild_order(facts, order_id)
    listing_id, first = split_order_id(order_id)
    return OrderSection(
        listing_id=listing_id,
        first_index=first,
        indexes=list(range(first, first + order.quantity)),
        buyer_pub_key=hex32(paid.args["buyerPubKey"]),
        struct=struct_section(order),
        hash=hex32(order.hash()),
        stored_hash=hex32(facts.stored_hash),
        paid=ref(paid),
    )


def _only(facts: Facts, name: str) -> FoundLog | None:
    found = [f for f in facts.order_logs if f.name == name]
    return found[-1] if found else None


def derive_delivery(facts: Facts, order: OrderStruct) -> DeliverySection | None:
    """The delivery section, when the order was delivered."""
    log = _only(facts, "OrderDelivered")
    if log is None:
        return None
    ts = facts.timestamp(log)
    return DeliverySection(
        release_digest=hex32(log.args["releaseDigest"]),
        delivered_at=ts,
        dispute_deadline=ts + order.dispute_window,
        event=ref(log),
    )


def derive_dispute(facts: Facts) -> DisputeSection | None:
    """The dispute section, when a dispute was opened."""
    log = _only(facts, "DisputeOpened")
    if log is None:
        return None
    return DisputeSection(
        opened_at=facts.timestamp(log),
        arbitration_deadline=int(log.args["arbitrationDeadline"]),
        evidence_uri=str(log.args["evidenceURI"]),
        evidence_hash=hex32(log.args["evidenceHash"]),
        event=ref(log),
    )


def derive_evidence(facts: Facts) -> list[EvidenceItem]:
    """Evidence the parties added (EvidenceAdded), in chain order."""
    return [
        EvidenceItem(
            party=to_checksum_address(log.args["party"]),
            uri=str(log.args["uri"]),
            evidence_hash=hex32(log.args["evidenceHash"]),
            event=ref(log),
        )
        for log in facts.order_logs
        if log.name == "EvidenceAdded"
    ]


def derive_ruling(facts: Facts) -> RulingSection | None:
    """The ruling section, when the dispute was resolved."""
    log = _only(facts, "DisputeRuled")
    if log is None:
        return None
    a = log.args
    arbiter = to_checksum_address(a["arbiter"])
    kind = "arbiter"
    if int(arbiter, 16) == 0:
        kind = "timeout"
    elif arbiter == facts.escrow:
        kind = "bad-code-proven"
    reason = bytes(a["reason"])
    return RulingSection(
        kind=kind,  # type: ignore[arg-type]
        arbiter=arbiter,
        buyer_bps=int(a["buyerBps"]),
        slash_bps=int(a["slashBps"]),
        buyer_amount=str(int(a["buyerAmount"])),
        supplier_amount=str(int(a["supplierAmount"])),
        slashed=str(int(a["slashed"])),
        bundle_hash=hex32(a["bundleHash"]),
        reason=hex32(reason),
        reason_text=decode_reason(reason),
        ruled_at=facts.timestamp(log),
        event=ref(log),
    )


def derive_events(facts: Facts) -> list[EventRecord]:
    """Every log of the order, in chain order, with its decoded arguments."""
    return [
        EventRecord(
            name=log.name,
            tx=log.tx,
            log_index=log.log_index,
            block_number=log.block_number,
            args=json_args(log.name, log.args),
        )
        for log in facts.order_logs
    ]


def cited_logs(facts: Facts) -> list[FoundLog]:
    """Every log a bundle cites: listing, batches and the order's own."""
    return [facts.listing_created, facts.meta_evidence, *facts.batches, *facts.order_logs]


def derive_transactions(facts: Facts) -> list[TxRecord]:
    """Every transaction cited, ordered by block number then hash."""
    hashes = {log.tx for log in cited_logs(facts)}
    out = []
    for h in hashes:
        tx = facts.txs[h]
        out.append(
            TxRecord(
                hash=tx.hash,
                block_number=tx.block_number,
                block_hash=tx.block_hash,
                timestamp=facts.blocks[tx.block_hash].timestamp,
                sender=tx.sender,
                to=tx.to,
                status=tx.status,
            )
        )
    out.sort(key=lambda t: (t.block_number, t.hash))
    return out


# ---------------------------------------------------------------- the release


def derive_opening(
    *,
    chain_id: int,
    escrow: str,
    order_id: int,
    quantity: int,
    onchain_digest: bytes | None,
    sealed: bytes,
    secret: bytes,
    release: ReleaseSection | None,
) -> OpeningSection:
    """Open the sealed release with the buyer's secret and check each code against the
    commitment the release's proof material gives for its index.

    Never raises: what goes wrong is recorded as ``problem`` (``cannot-open``, ``bad-payload``,
    ``wrong-order``, ``wrong-indexes``).
    """

    def closed(problem: str) -> OpeningSection:
        return OpeningSection(
            opens=problem != "cannot-open",
            problem=problem,
            digest_matches_chain=False,
            codes=[],
            bad_code_proofs=[],
        )

    try:
        payload = bytes(SealedBox(PrivateKey(secret)).decrypt(sealed))
    except CryptoError:
        return closed("cannot-open")
    try:
        tag, p_chain, p_escrow, p_order, key, items = decode_payload(payload)
    except ValueError:
        return closed("bad-payload")
    if tag != PAYLOAD_TAG:
        return closed("bad-payload")
    if p_chain != chain_id or p_escrow.lower() != escrow.lower() or p_order != order_id:
        return closed("wrong-order")
    _, first = split_order_id(order_id)
    problem = None
    if [i for i, *_ in items] != list(range(first, first + quantity)):
        problem = "wrong-indexes"
    leaves = [element_leaf(i, salt, ct) for i, salt, ct, _ in items] if items else []
    tree = MerkleTree(leaves) if leaves else None
    element_root = tree.root if tree is not None else b"\0" * 32
    sealed_hash = keccak(sealed)
    digest = release_digest_v2(sealed_hash, element_root, key)
    matches_chain = onchain_digest is not None and digest == onchain_digest
    claims = {c.index: c for c in release.codes} if release is not None else {}
    codes: list[OpenedCode] = []
    proofs: list[BadCodeProofSection] = []
    for pos, (index, salt, ct, expires) in enumerate(items):
        code = keystream_xor(key, index, ct)
        computed = commitment(salt, code)
        claim = claims.get(index)
        matches = claim is not None and hex32(computed) == claim.commitment
        codes.append(
            OpenedCode(
                index=index,
                salt=hex32(salt),
                ciphertext=hex32(ct),
                code=base64.b64encode(code).decode("ascii"),
                expires_at=expires,
                commitment=hex32(computed),
                matches_commitment=matches,
            )
        )
        if not matches and claim is not None and matches_chain and tree is not None:
            proofs.append(
                BadCodeProofSection(
                    sealed_hash=hex32(sealed_hash),
                    key=hex32(key),
                    index=index,
                    salt=hex32(salt),
                    ciphertext=hex32(ct),
                    element_proof=[hex32(p) for p in tree.proof(pos)],
                    batch_index=claim.batch_index,
                    committed=claim.commitment,
                    leaf_proof=list(claim.proof),
                )
            )
    return OpeningSection(
        opens=True,
        problem=problem,
        key=hex32(key),
        element_root=hex32(element_root),
        digest=hex32(digest),
        digest_matches_chain=matches_chain,
        codes=codes,
        bad_code_proofs=proofs,
    )


def derive_additions(
    inputs: Inputs, release: ReleaseSection | None, opening: OpeningSection | None
) -> Additions:
    """The additions, with what each supplier claim amounts to against the release."""
    buyer = BuyerAddition(order_secret=hex32(inputs.buyer_secret)) if inputs.buyer_secret else None
    supplier = None
    if inputs.supplier_codes is not None:
        committed = {c.index: c.commitment for c in release.codes} if release else {}
        opened = (
            {c.index: c.code for c in opening.codes}
            if opening is not None and opening.digest_matches_chain
            else {}
        )
        codes = []
        for claim in sorted(inputs.supplier_codes, key=lambda c: c.index):
            computed = hex32(commitment(claim.salt, claim.code))
            text = base64.b64encode(claim.code).decode("ascii")
            codes.append(
                SupplierCode(
                    index=claim.index,
                    salt=hex32(claim.salt),
                    code=text,
                    commitment=computed,
                    matches_commitment=(
                        computed == committed[claim.index] if claim.index in committed else None
                    ),
                    matches_release=(
                        opened[claim.index] == text if claim.index in opened else None
                    ),
                )
            )
        supplier = SupplierAddition(codes=codes)
    return Additions(buyer=buyer, supplier=supplier)


# ---------------------------------------------------------------- the whole document


def erc1497_text(facts: Facts, order_id: int, quantity: int) -> tuple[str, str]:
    """The ERC-1497 ``name`` and ``description`` (fixed by the facts, so checkable)."""
    listing_id, first = split_order_id(order_id)
    last = first + quantity - 1
    name = f"kameng evidence bundle: order {order_id}"
    description = (
        f"Order {order_id} of listing {listing_id} (code indexes {first}..{last}) on escrow "
        f"{facts.escrow}, chain {facts.chain_id}, as of block {facts.as_of.number}. Every "
        "claim can be checked against the chain alone: kameng verify FILE --rpc-url URL."
    )
    return name, description


def assemble(facts: Facts, order_id: int, inputs: Inputs) -> dict[str, object]:
    """The whole bundle, without ``selfHash``, as a JSON value.

    Raises:
        DeriveError: the facts do not make a bundle (no such order, listing or batch).
    """
    from backend.evidence.schema import to_json

    order = derive_order(facts, order_id)
    listing = derive_listing(facts, order.listing_id)
    batches = derive_batches(facts, order.listing_id, order.indexes)
    delivery = derive_delivery(facts, order.struct)
    opening = None
    if inputs.sealed is not None and inputs.buyer_secret is not None:
        opening = derive_opening(
            chain_id=facts.chain_id,
            escrow=facts.escrow,
            order_id=order_id,
            quantity=order.struct.quantity,
            onchain_digest=bytes.fromhex(delivery.release_digest[2:]) if delivery else None,
            sealed=inputs.sealed,
            secret=inputs.buyer_secret,
            release=inputs.release,
        )
    name, description = erc1497_text(facts, order_id, order.struct.quantity)
    doc: dict[str, object] = {"name": name, "description": description}
    if inputs.sealed is not None:
        doc["fileURI"] = DATA_URI_PREFIX + base64.b64encode(inputs.sealed).decode("ascii")
        doc["fileHash"] = keccak_multihash(inputs.sealed)
        doc["fileTypeExtension"] = FILE_TYPE
    doc.update(
        {
            "format": FORMAT,
            "chainId": facts.chain_id,
            "escrow": facts.escrow,
            "escrowCodeHash": hex32(facts.escrow_code_hash),
            "orderId": str(order_id),
            "asOf": to_json(
                BlockRef(
                    block_number=facts.as_of.number,
                    block_hash=facts.as_of.hash,
                    timestamp=facts.as_of.timestamp,
                )
            ),
            "listing": to_json(listing),
            "batches": [to_json(b) for b in batches],
            "order": to_json(order),
            "evidence": [to_json(e) for e in derive_evidence(facts)],
            "events": [to_json(e) for e in derive_events(facts)],
            "transactions": [to_json(t) for t in derive_transactions(facts)],
            "additions": to_json(derive_additions(inputs, inputs.release, opening)),
        }
    )
    optional = {
        "delivery": delivery,
        "release": inputs.release if inputs.sealed is not None else None,
        "opening": opening,
        "dispute": derive_dispute(facts),
        "ruling": derive_ruling(facts),
    }
    for key, section in optional.items():
        if section is not None:
            doc[key] = to_json(section)
    return doc


def release_section(
    *,
    element_root: bytes,
    codes: Sequence[tuple[int, bytes, int, Sequence[bytes]]],
    key_hash: bytes | None = None,
    published: LogRef | None = None,
) -> ReleaseSection:
    """The release section from public proof material: (index, commitment, batch, proof);
    with `published`, the ReleasePublished log it was read from (``source: chain``)."""
    return ReleaseSection(
        element_root=hex32(element_root),
        key_hash=hex32(key_hash) if key_hash is not None else None,
        codes=[
            CodeProofSection(
                index=index,
                commitment=hex32(c),
                batch_index=batch,
                proof=[hex32(p) for p in proof],
            )
            for index, c, batch, proof in codes
        ],
        source="chain" if published is not None else None,
        published=published,
    )


def release_from_log(log: FoundLog) -> tuple[bytes, ReleaseSection]:
    """The sealed bytes and public section a ReleasePublished log carries.

    Proofs that do not decode (the contract checks only the digest, which they are not part
    of) give no codes, so the ``release.codes`` claim fails against the supplier who sent them.
    """
    a = log.args
    try:
        codes = decode_release_proofs(bytes(a["proofs"]))
    except ValueError:
        codes = []
    section = release_section(
        element_root=bytes(a["elementRoot"]),
        codes=codes,
        key_hash=bytes(a["keyHash"]),
        published=ref(log),
    )
    return bytes(a["sealedRelease"]), section


def published_log(facts: Facts, order_id: int) -> FoundLog | None:
    """The order's ReleasePublished log: in the transaction of its OrderDelivered, where
    ``deliverOnChain`` emits it; None when the order was delivered off-chain or not yet."""
    delivered = _only(facts, "OrderDelivered")
    tx = facts.txs.get(delivered.tx) if delivered is not None else None
    if tx is None:
        return None
    return next(
        (f for f in tx.logs if f.name == "ReleasePublished" and int(f.args["orderId"]) == order_id),
        None,
    )


def published_release(facts: Facts, order_id: int) -> tuple[bytes, ReleaseSection] | None:
    """The release the chain published for the order (see `published_log`), as the bundle
    carries it: sealed bytes and public section with ``source: chain``."""
    log = published_log(facts, order_id)
    return release_from_log(log) if log is not None else None
