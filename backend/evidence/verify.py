"""The chain-only verifier: check every claim of a bundle against the chain, and nothing else.

    checklist = verify_bundle(data, chain)        # or verify_bundle(data, "http://node:8545")
    checklist.ok, checklist.claims, checklist.findings

No database and no backend are consulted. The verifier parses the bundle strictly, checks its
canonical form and ``selfHash``, then reads the chain starting from the references the bundle
gives (receipts by transaction hash, logs at their index, blocks by hash, state calls pinned to
the bundle's block), derives every section again with the builder's own code
(`backend.evidence.derive`) and compares them one by one. A section that differs fails with the
first differing field named. Claims about the release are checked separately: each code's
commitment under its batch's on-chain root, the buyer's secret against the on-chain public key,
and the sealed bytes against the on-chain digest (by opening them with the buyer's secret, or
through the release key hash when the bundle carries one). A release the bundle says it read
from the chain (``source: chain``) must also be, byte for byte, the ReleasePublished log it
cites, in the order's delivering transaction (``release.source``).

Findings are what a passing bundle proves about the parties: the delivery time, a code that does
not match its commitment (and the ready ``proveBadCode`` argument), codes that all match.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from eth_abi import encode as abi_encode
from eth_utils import keccak
from nacl.public import PrivateKey
from pydantic import BaseModel, ValidationError

from backend.evidence import canonical
from backend.evidence.bundle import fill_blocks
from backend.evidence.chainview import (
    BlockInfo,
    ChainView,
    FactMissing,
    artifact_code_hash,
    hex32,
)
from backend.evidence.derive import (
    DATA_URI_PREFIX,
    FILE_TYPE,
    OPEN_STATES,
    DeriveError,
    Facts,
    Inputs,
    SupplierClaim,
    derive_additions,
    derive_batches,
    derive_delivery,
    derive_dispute,
    derive_events,
    derive_evidence,
    derive_listing,
    derive_opening,
    derive_order,
    derive_ruling,
    derive_transactions,
    erc1497_text,
    published_log,
    release_from_log,
)
from backend.evidence.errors import BundleFormatError
from backend.evidence.schema import EvidenceBundle, OrderSection, ReleaseSection, to_json
from contracts.encoding import leaf
from contracts.errors import ChainError
from contracts.merkle import verify as merkle_verify

if TYPE_CHECKING:
    from backend.evidence.chainview import LogIndex
    from contracts.chain import Chain

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Claim:
    """One line of the checklist.

    Attributes:
        name: The claim, named after the part of the bundle it covers (``release.code[7]``).
        status: ``pass``, ``fail``, or ``skip`` (cannot be checked without a party's addition).
        detail: What was checked, or what differs.
    """

    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Finding:
    """A fact a verified bundle establishes about the order.

    Attributes:
        kind: ``delivered``, ``not-delivered``, ``published``, ``codes-match``, ``bad-code``,
            ``code``, ``supplier-codes``, ``ruling``.
        detail: The fact, in a sentence.
        against: ``supplier`` or ``buyer`` when the fact weighs against a party.
    """

    kind: str
    detail: str
    against: str | None = None


@dataclass
class Checklist:
    """The verifier's verdict on one bundle."""

    claims: list[Claim] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    order_id: int | None = None
    self_hash: str | None = None
    bundle_hash: bytes | None = None

    @property
    def ok(self) -> bool:
        """No claim failed (skipped claims need a party's addition; they do not fail)."""
        return bool(self.claims) and all(c.status != "fail" for c in self.claims)

    def failed(self) -> list[Claim]:
        """The claims that failed."""
        return [c for c in self.claims if c.status == "fail"]

    def claim(self, name: str) -> Claim:
        """The claim called `name`.

        Raises:
            KeyError: there is none.
        """
        for c in self.claims:
            if c.name == name:
                return c
        raise KeyError(name)

    def add(self, name: str, status: Status, detail: str) -> None:
        """Record a claim."""
        self.claims.append(Claim(name, status, detail))


def first_difference(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, as ``path: bundle says X, chain says Y``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if path else key
            if key not in actual:
                return f"{sub}: missing from the bundle"
            if key not in expected:
                return f"{sub}: in the bundle but not on-chain"
            found = first_difference(expected[key], actual[key], sub)
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            found = first_difference(e, a, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{path}: {len(actual)} item(s) in the bundle, {len(expected)} on-chain"
        return None
    if expected != actual or type(expected) is not type(actual):
        return f"{path}: bundle says {_short(actual)}, chain says {_short(expected)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 90 else text[:87] + "..."


def _compare(out: Checklist, name: str, derive: Callable[[], Any], actual: Any, what: str) -> Any:
    """Derive a section from the chain and compare it with the bundle's; record the claim."""
    try:
        expected = derive()
    except (DeriveError, FactMissing) as exc:
        out.add(name, "fail", str(exc))
        return None
    exp_json = _as_json(expected)
    act_json = _as_json(actual)
    diff = first_difference(exp_json, act_json, name)
    if diff:
        out.add(name, "fail", diff)
    elif expected is None or expected == []:
        out.add(name, "pass", "none on-chain up to the bundle's block, none claimed")
    else:
        out.add(name, "pass", what)
    return expected


def _as_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return to_json(value)
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def parse(data: bytes, out: Checklist) -> EvidenceBundle | None:
    """Parse a bundle strictly, recording ``json``, ``canonical``, ``schema``, ``selfHash``."""
    try:
        parsed = canonical.loads(data)
    except BundleFormatError as exc:
        out.add("json", "fail", exc.detail)
        return None
    out.add("json", "pass", "UTF-8 JSON, integers only, no duplicate keys")
    if not isinstance(parsed, dict):
        out.add("schema", "fail", "the bundle is not a JSON object")
        return None
    try:
        again = canonical.dumps(parsed)
    except BundleFormatError as exc:
        out.add("canonical", "fail", exc.detail)
        again = None
    if again is not None:
        if again == data:
            out.add("canonical", "pass", "sorted keys, no whitespace, integers below 2^53")
        else:
            at = next(
                (i for i, (a, b) in enumerate(zip(again, data, strict=False)) if a != b),
                min(len(again), len(data)),
            )
            out.add("canonical", "fail", f"not the canonical serialization (first at byte {at})")
    out.self_hash = parsed.get("selfHash") if isinstance(parsed.get("selfHash"), str) else None
    try:
        out.bundle_hash = canonical.bundle_hash(parsed)
        expected_self = canonical.multihash(out.bundle_hash)
    except BundleFormatError:
        expected_self = None
    if expected_self is not None and expected_self == out.self_hash:
        out.add("selfHash", "pass", f"keccak-256 multihash of the bundle: {expected_self}")
    else:
        out.add(
            "selfHash",
            "fail",
            f"selfHash is {out.self_hash!r}, the bundle hashes to {expected_self!r}",
        )
    try:
        bundle = EvidenceBundle.model_validate(parsed)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        out.add("schema", "fail", f"{where}: {err['msg']}")
        return None
    if to_json(bundle) != parsed:
        diff = first_difference(to_json(bundle), parsed, "") or "explicit nulls"
        out.add("schema", "fail", f"not in the schema's own form: {diff}")
        return None
    out.add("schema", "pass", "kameng.evidence.v2")
    out.order_id = int(bundle.order_id)
    return bundle


def _sealed(bundle: EvidenceBundle, out: Checklist) -> bytes | None:
    """The sealed release from ``fileURI``, checked against ``fileHash``."""
    if bundle.file_uri is None:
        if bundle.file_hash is not None or bundle.release is not None:
            out.add("release.fileHash", "fail", "fileHash or release without a fileURI")
        return None
    if not bundle.file_uri.startswith(DATA_URI_PREFIX):
        out.add("release.fileHash", "fail", f"fileURI must start with {DATA_URI_PREFIX!r}")
        return None
    try:
        sealed = base64.b64decode(bundle.file_uri[len(DATA_URI_PREFIX) :], validate=True)
    except binascii.Error:
        out.add("release.fileHash", "fail", "fileURI does not hold base64")
        return None
    if base64.b64encode(sealed).decode("ascii") != bundle.file_uri[len(DATA_URI_PREFIX) :]:
        out.add("release.fileHash", "fail", "fileURI's base64 is not canonical")
        return None
    if bundle.file_hash != canonical.keccak_multihash(sealed):
        out.add(
            "release.fileHash",
            "fail",
            "fileHash is not the keccak-256 multihash of the sealed release in fileURI",
        )
        return None
    if bundle.file_type_extension != FILE_TYPE or bundle.release is None:
        out.add(
            "release.fileHash",
            "fail",
            f"fileTypeExtension must be {FILE_TYPE!r} with a release section",
        )
        return None
    out.add(
        "release.fileHash", "pass", f"{len(sealed)} sealed bytes, keccak256 {hex32(keccak(sealed))}"
    )
    return sealed


def _facts(
    view: ChainView, bundle: EvidenceBundle, as_of: BlockInfo, out: Checklist
) -> Facts | None:
    """Read the facts the bundle cites, from the chain; record a claim when one is missing."""
    oid = int(bundle.order_id)
    try:
        created = view.log_at(
            bundle.listing.created.tx, bundle.listing.created.log_index, "listing"
        )
        meta = view.log_at(
            bundle.listing.meta_evidence.tx, bundle.listing.meta_evidence.log_index, "listing"
        )
    except FactMissing as exc:
        out.add("listing", "fail", str(exc))
        return None
    batches = []
    for i, b in enumerate(bundle.batches):
        try:
            batches.append(view.log_at(b.event.tx, b.event.log_index, f"batches[{i}]"))
        except FactMissing as exc:
            out.add(f"batches[{i}]", "fail", str(exc))
            return None
    try:
        paid = view.log_at(bundle.order.paid.tx, bundle.order.paid.log_index, "order")
    except FactMissing as exc:
        out.add("order", "fail", str(exc))
        return None
    if paid.name != "OrderPaid" or int(paid.args["orderId"]) != oid:
        out.add("order", "fail", f"the cited log is {paid.name}, not OrderPaid({oid})")
        return None
    if paid.block_number > as_of.number:
        out.add("order", "fail", "the order was paid after the bundle's block")
        return None
    try:
        facts = Facts(
            chain_id=bundle.chain_id,
            escrow=view.escrow,
            escrow_code_hash=b"",
            as_of=as_of,
            listing_created=created,
            meta_evidence=meta,
            batches=batches,
            order_logs=view.order_logs(oid, paid.block_number, as_of.number),
            stored_hash=view.order_hash_at(as_of, oid),
        )
        fill_blocks(view, facts)
    except FactMissing as exc:
        out.add(exc.claim, "fail", str(exc))
        return None
    return facts


def _source_claim(
    release: ReleaseSection, order_id: int, facts: Facts, sealed: bytes, out: Checklist
) -> None:
    """``release.source``: a release the bundle says it read from the chain is, byte for byte,
    the ReleasePublished log it cites, and that log is the order's, in its delivering
    transaction. A release without a source claims nothing here (the digest binds it)."""
    if release.source is None and release.published is None:
        return
    name = "release.source"
    cited = release.published
    if release.source != "chain" or cited is None:
        out.add(name, "fail", "a release from the chain names the ReleasePublished log it is")
        return
    where = f"{cited.tx}#{cited.log_index}"
    log = published_log(facts, order_id)
    if log is None:
        out.add(
            name,
            "fail",
            f"order {order_id}'s delivering transaction has no ReleasePublished log up to the "
            "bundle's block: the release was not published on-chain",
        )
        return
    if (log.tx, log.log_index) != (cited.tx, cited.log_index):
        out.add(
            name,
            "fail",
            f"the bundle cites {where}; order {order_id}'s ReleasePublished is "
            f"{log.tx}#{log.log_index}",
        )
        return
    expected_sealed, expected = release_from_log(log)
    if expected_sealed != sealed:
        out.add(
            name,
            "fail",
            f"the sealed bytes in fileURI ({len(sealed)} bytes, keccak256 "
            f"{hex32(keccak(sealed))[:18]}…) are not the ReleasePublished log's at {where} "
            f"({len(expected_sealed)} bytes, keccak256 {hex32(keccak(expected_sealed))[:18]}…)",
        )
        return
    diff = first_difference(to_json(expected), to_json(release), "release")
    if diff:
        out.add(name, "fail", f"{diff} (the ReleasePublished log at {where})")
        return
    out.add(
        name,
        "pass",
        f"the sealed bytes, element root, key hash and proofs are the ReleasePublished log's "
        f"at {where}",
    )


def _release_claims(
    bundle: EvidenceBundle,
    order: OrderSection,
    facts: Facts,
    sealed: bytes | None,
    out: Checklist,
) -> None:
    """Per-code proofs under the on-chain roots, and the release's tie to the on-chain digest."""
    release = bundle.release
    if release is None or sealed is None:
        return
    indexes = [c.index for c in release.codes]
    if indexes != order.indexes:
        out.add(
            "release.codes",
            "fail",
            f"the release covers indexes {indexes[:6]}..., the order {order.indexes[:6]}...",
        )
    else:
        out.add(
            "release.codes",
            "pass",
            f"one commitment per code, indexes {order.indexes[0]}..{order.indexes[-1]}",
        )
    try:
        roots = {b.batch_index: b for b in derive_batches(facts, order.listing_id, order.indexes)}
    except DeriveError:
        roots = {}
    for c in release.codes:
        name = f"release.code[{c.index}]"
        batch = roots.get(c.batch_index)
        if batch is None:
            out.add(name, "fail", f"batch {c.batch_index} is not among the verified batches")
        elif not batch.first_index <= c.index < batch.first_index + batch.count:
            out.add(name, "fail", f"index {c.index} is not in batch {c.batch_index}")
        elif not merkle_verify(
            [bytes.fromhex(p[2:]) for p in c.proof],
            bytes.fromhex(batch.root[2:]),
            leaf(c.index, bytes.fromhex(c.commitment[2:])),
        ):
            out.add(
                name,
                "fail",
                f"commitment {c.commitment[:18]}… with its proof does not "
                f"reach batch {c.batch_index}'s on-chain root {batch.root[:18]}…",
            )
        else:
            out.add(
                name,
                "pass",
                f"commitment {c.commitment[:18]}… is under batch {c.batch_index}'s on-chain root",
            )
    delivery = derive_delivery(facts, order.struct)
    _source_claim(release, int(bundle.order_id), facts, sealed, out)
    onchain = bytes.fromhex(delivery.release_digest[2:]) if delivery else None
    if onchain is None:
        out.add("release.digest", "fail", "the order has no OrderDelivered: no release is bound")
        return
    if release.key_hash is not None:
        # keyHash is keccak256(abi.encode(key)), the last word the digest hashes.
        digest = keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32"],
                [
                    keccak(sealed),
                    bytes.fromhex(release.element_root[2:]),
                    bytes.fromhex(release.key_hash[2:]),
                ],
            )
        )
        if digest == onchain:
            out.add(
                "release.digest",
                "pass",
                "sealed bytes, element root and key hash give the on-chain digest",
            )
        else:
            out.add(
                "release.digest",
                "fail",
                "sealed bytes, element root and key hash do not give the on-chain digest",
            )
        return
    opening = bundle.opening
    if opening is None:
        out.add(
            "release.digest",
            "skip",
            "the sealed release cannot be tied to the on-chain "
            "digest without the buyer's secret (ask the buyer to add it)",
        )
        return
    if opening.digest_matches_chain and opening.element_root == release.element_root:
        out.add(
            "release.digest",
            "pass",
            "opened with the buyer's secret: the sealed bytes, "
            "element root and key give the on-chain digest",
        )
    elif opening.digest_matches_chain:
        out.add("release.digest", "fail", "the release's element root is not the opened one")
    else:
        out.add(
            "release.digest",
            "fail",
            "the buyer's secret does not open this sealed release "
            f"to the on-chain digest ({opening.problem or 'digest differs'}): it is not the "
            "release that was delivered to this buyer, or it was sealed to another key",
        )


def verify_bundle(
    data: bytes, chain: Chain | str, index_for: Callable[[str], LogIndex | None] | None = None
) -> Checklist:
    """Check every claim of a bundle against the chain alone.

    Args:
        data: The bundle's bytes, exactly as written.
        chain: A `Chain`, or a JSON-RPC URL (an archive node for old bundles).
        index_for: Given the bundle's escrow, where its logs are (`ChainView`'s `LogIndex`):
            the server passes its mirror's for its own escrow, so that checking an old order
            on a long chain reads a few blocks instead of scanning; None scans.

    Returns:
        The checklist; ``ok`` is False when any claim failed.

    Raises:
        ChainError: the node cannot be reached.
    """
    out = Checklist()
    bundle = parse(data, out)
    if bundle is None:
        return out
    if isinstance(chain, str):
        from contracts.chain import rpc_chain

        chain = rpc_chain(chain)
    view = ChainView(chain, bundle.escrow)
    if index_for is not None:
        view.index = index_for(view.escrow)
    try:
        _verify_against_chain(view, bundle, out)
    except FactMissing as exc:
        out.add(exc.claim, "fail", str(exc))
    except (ChainError, ValueError) as exc:
        out.add("chain", "fail", f"the node could not answer: {exc}")
    return out


def _verify_against_chain(view: ChainView, bundle: EvidenceBundle, out: Checklist) -> None:
    oid = int(bundle.order_id)
    chain_id = view.chain_id()
    if chain_id != bundle.chain_id:
        out.add(
            "chain.id",
            "fail",
            f"the bundle is for chain {bundle.chain_id}, the node is chain {chain_id}",
        )
        return
    out.add("chain.id", "pass", f"chain {chain_id}")
    a = bundle.as_of
    try:
        as_of = view.block(a.block_number)
    except FactMissing as exc:
        out.add("chain.asOf", "fail", f"{exc}: the bundle is from another chain, or ahead of it")
        return
    if (as_of.hash, as_of.timestamp) != (a.block_hash, a.timestamp):
        out.add(
            "chain.asOf",
            "fail",
            f"block {a.block_number} is {as_of.hash} at "
            f"{as_of.timestamp}, not {a.block_hash} at {a.timestamp}",
        )
        return
    out.add("chain.asOf", "pass", f"block {a.block_number} {a.block_hash[:18]}… at {a.timestamp}")
    code_hash = view.code_hash()
    if hex32(code_hash) != bundle.escrow_code_hash:
        out.add("escrow.bytecode", "fail", f"the escrow's code hashes to {hex32(code_hash)}")
        return
    if code_hash != artifact_code_hash():
        out.add("escrow.bytecode", "fail", "the escrow does not run kameng's CodeEscrow bytecode")
        return
    out.add("escrow.bytecode", "pass", f"{bundle.escrow} runs kameng's CodeEscrow")

    facts = _facts(view, bundle, as_of, out)
    if facts is None:
        return
    facts.escrow_code_hash = code_hash
    order = _compare(
        out,
        "order",
        lambda: derive_order(facts, oid),
        bundle.order,
        "OrderPaid and every later event rebuild this order struct",
    )
    if order is None:
        return
    name, description = erc1497_text(facts, oid, order.struct.quantity)
    if (bundle.name, bundle.description) == (name, description):
        out.add("erc1497", "pass", "name and description")
    else:
        out.add("erc1497", "fail", f"name or description is not the one the facts give: {name!r}")
    open_ = order.struct.state in OPEN_STATES
    want = order.hash if open_ else hex32(b"\0" * 32)
    if order.stored_hash == want:
        out.add(
            "order.storage",
            "pass",
            "orderHash at the bundle's block: "
            + ("the struct's hash" if open_ else "zero (finished)"),
        )
    else:
        out.add(
            "order.storage",
            "fail",
            f"orderHash at block {as_of.number} is {order.stored_hash}, not {want}",
        )
    _compare(
        out,
        "listing",
        lambda: derive_listing(facts, order.listing_id),
        bundle.listing,
        "ListingCreated and MetaEvidence",
    )
    _compare(
        out,
        "batches",
        lambda: derive_batches(facts, order.listing_id, order.indexes),
        bundle.batches,
        "BatchCommitted logs of every batch holding the order's codes",
    )
    _compare(
        out,
        "events",
        lambda: derive_events(facts),
        bundle.events,
        f"all {len(facts.order_logs)} logs of the order up to the bundle's block, none left out",
    )
    _compare(
        out,
        "transactions",
        lambda: derive_transactions(facts),
        bundle.transactions,
        "receipts and blocks (number, hash, timestamp) of every transaction cited",
    )
    delivery = _compare(
        out,
        "delivery",
        lambda: derive_delivery(facts, order.struct),
        bundle.delivery,
        "OrderDelivered and its block time",
    )
    _compare(out, "dispute", lambda: derive_dispute(facts), bundle.dispute, "DisputeOpened")
    _compare(out, "evidence", lambda: derive_evidence(facts), bundle.evidence, "EvidenceAdded")
    ruling = _compare(out, "ruling", lambda: derive_ruling(facts), bundle.ruling, "DisputeRuled")

    sealed = _sealed(bundle, out)
    _release_claims(bundle, order, facts, sealed, out)
    secret = (
        bytes.fromhex(bundle.additions.buyer.order_secret[2:]) if bundle.additions.buyer else None
    )
    if secret is not None:
        public = bytes(PrivateKey(secret).public_key)
        if hex32(public) == order.buyer_pub_key:
            out.add("additions.buyer", "pass", "the secret is the key of the order's buyerPubKey")
        else:
            out.add(
                "additions.buyer",
                "fail",
                "the secret's public key is not the order's buyerPubKey (OrderPaid)",
            )
    opening = None
    if secret is not None and sealed is not None:
        opening = _compare(
            out,
            "release.opening",
            lambda: derive_opening(
                chain_id=bundle.chain_id,
                escrow=view.escrow,
                order_id=oid,
                quantity=order.struct.quantity,
                onchain_digest=bytes.fromhex(delivery.release_digest[2:]) if delivery else None,
                sealed=sealed,
                secret=secret,
                release=bundle.release,
            ),
            bundle.opening,
            "the release opened with the buyer's secret; each code checked against its leaf",
        )
    elif bundle.opening is not None:
        out.add("release.opening", "fail", "an opening without the buyer's secret and release")
    if bundle.additions.supplier is not None:
        claims = [
            SupplierClaim(c.index, bytes.fromhex(c.salt[2:]), base64.b64decode(c.code))
            for c in bundle.additions.supplier.codes
        ]
        if not all(c.index in order.indexes for c in claims):
            out.add("additions.supplier", "fail", "a supplier code is outside the order")
        else:
            _compare(
                out,
                "additions.supplier",
                lambda: (
                    derive_additions(
                        Inputs(supplier_codes=claims), bundle.release, opening
                    ).supplier
                ),
                bundle.additions.supplier,
                "each code the supplier says it sent, against its commitment and the release",
            )
    if out.ok:
        out.findings.extend(findings(bundle, order, delivery, opening, ruling))


def findings(
    bundle: EvidenceBundle, order: OrderSection, delivery: Any, opening: Any, ruling: Any
) -> list[Finding]:
    """What a verified bundle establishes, for the arbiter."""
    out: list[Finding] = []
    if delivery is None:
        out.append(Finding("not-delivered", "no OrderDelivered: nothing was delivered on-chain"))
    else:
        out.append(
            Finding(
                "delivered",
                f"delivered at {delivery.delivered_at} (block time) in {delivery.event.tx}, "
                f"digest {delivery.release_digest[:18]}…; dispute window until "
                f"{delivery.dispute_deadline}",
            )
        )
    published = bundle.release.published if bundle.release is not None else None
    if published is not None:
        out.append(
            Finding(
                "published",
                f"the sealed release is on-chain (ReleasePublished in {published.tx}): any node "
                "serves it to the buyer, with or without the supplier's backend",
            )
        )
    if opening is not None and opening.digest_matches_chain:
        bad = [c for c in opening.codes if not c.matches_commitment]
        if bad:
            for c in bad:
                out.append(
                    Finding(
                        "bad-code",
                        f"index {c.index}: the released code does not match the commitment "
                        "committed on-chain for it; provable without a judge (proveBadCode)",
                        against="supplier",
                    )
                )
        else:
            out.append(
                Finding(
                    "codes-match",
                    f"the release opens to the committed codes at indexes "
                    f"{order.indexes[0]}..{order.indexes[-1]}: delivery of what was sold is "
                    "proven",
                    against="buyer",
                )
            )
        for c in opening.codes:
            code = base64.b64decode(c.code)
            text = code.decode("utf-8", errors="replace")
            out.append(Finding("code", f"index {c.index}: code {text!r} (for the issuer to check)"))
    if bundle.additions.supplier is not None:
        for s in bundle.additions.supplier.codes:
            if s.matches_commitment is False or s.matches_release is False:
                out.append(
                    Finding(
                        "supplier-codes",
                        f"index {s.index}: the code the supplier says it sent "
                        + (
                            "does not match its commitment"
                            if s.matches_commitment is False
                            else "is not the code in the release"
                        ),
                        against="supplier",
                    )
                )
    if ruling is not None:
        out.append(
            Finding(
                "ruling",
                f"ruled by {ruling.kind} {ruling.arbiter}: buyer {ruling.buyer_bps} bps, slash "
                f"{ruling.slash_bps} bps, reason {ruling.reason_text!r}, citing bundle "
                f"{ruling.bundle_hash[:18]}…",
            )
        )
    return out
