"""The evidence bundle's schema, as strict pydantic models (docs/PROTOCOL.md, "Evidence bundle").

Every model forbids unknown keys and coerces nothing, so a bundle that parses is exactly one of
these documents. JSON keys are camelCase (ERC-1497 spells ``fileURI``, ``fileHash``,
``selfHash``); optional sections are left out when empty, never written as ``null``.

Value conventions: addresses are EIP-55 checksummed; hashes and byte strings are 0x-prefixed
lowercase hex; integers below 2^53 are JSON numbers and larger ones (amounts, order ids) are
decimal strings; codes, which are bytes, are base64.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from eth_utils import is_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: The bundle format. v2 (2026-12-03): orders carry `reseller` and `resellerCut` where v1 had
#: `referrer` and `referralBps`, and listings lost `referralBps` (issue 15's resellers); a v1
#: bundle belongs to an escrow deployed before them and is refused by this verifier.
FORMAT = "kameng.evidence.v2"


def _checksummed(value: str) -> str:
    if not is_checksum_address(value):
        raise ValueError("not an EIP-55 checksummed address")
    return value


def _canonical_base64(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise ValueError("not canonical base64 (standard alphabet, with padding)")
    return value


Address = Annotated[str, AfterValidator(_checksummed)]
Hex32 = Annotated[str, Field(pattern=r"^0x[0-9a-f]{64}$")]
HexData = Annotated[str, Field(pattern=r"^0x(?:[0-9a-f]{2})*$")]
Uint = Annotated[str, Field(pattern=r"^(?:0|[1-9][0-9]{0,77})$")]
Int = Annotated[int, Field(ge=0, lt=2**53)]
Base64 = Annotated[str, AfterValidator(_canonical_base64)]
Multihash = Annotated[str, Field(pattern=r"^[1-9A-HJ-NP-Za-km-z]{1,64}$")]
ArgValue = str | int | bool


#: JSON names that camelCase alone does not give.
SPECIAL_NAMES = {
    "file_uri": "fileURI",
    "metadata_uri": "metadataURI",
    "evidence_uri": "evidenceURI",
    "sender": "from",
}


def json_name(name: str) -> str:
    """The JSON key of a field: camelCase, with ERC-1497's and Ethereum's own spellings."""
    return SPECIAL_NAMES.get(name, to_camel(name))


class Model(BaseModel):
    """Base of the bundle's models: strict, closed, camelCase."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=json_name,
        populate_by_name=True,
    )


class LogRef(Model):
    """Where a log is: its transaction and its index in the block."""

    tx: Hex32
    log_index: Int


class BlockRef(Model):
    """A block: number, hash and timestamp."""

    block_number: Int
    block_hash: Hex32
    timestamp: Int


class TxRecord(Model):
    """A transaction the bundle cites, with its block."""

    hash: Hex32
    block_number: Int
    block_hash: Hex32
    timestamp: Int
    sender: Address
    to: Address
    status: Int


class EventRecord(Model):
    """One escrow log, decoded: ``args`` as the ABI names them."""

    name: str
    tx: Hex32
    log_index: Int
    block_number: Int
    args: dict[str, ArgValue]


class ListingSection(Model):
    """The listing as created (ListingCreated and its ERC-1497 MetaEvidence)."""

    listing_id: Int
    supplier: Address
    sku: Hex32
    token: Address
    unit_price: Uint
    delivery_window: Int
    dispute_window: Int
    bond_bps: Int
    fee_bps: Int
    metadata_uri: str
    created: LogRef
    meta_evidence: LogRef


class BatchSection(Model):
    """A committed batch holding some of the order's code indexes."""

    batch_index: Int
    root: Hex32
    first_index: Int
    count: Int
    committed: Int
    event: LogRef


class OrderStruct(Model):
    """The contract's Order struct, as of the bundle's block."""

    buyer: Address
    supplier: Address
    token: Address
    reseller: Address
    amount: Uint
    bond: Uint
    quantity: Int
    fee_bps: Int
    reseller_cut: Uint
    dispute_window: Int
    deadline: Int
    state: Int
    release_digest: Hex32


class OrderSection(Model):
    """The order: its indexes, key, struct and stored hash."""

    listing_id: Int
    first_index: Int
    indexes: list[Int]
    buyer_pub_key: Hex32
    struct: OrderStruct
    hash: Hex32
    stored_hash: Hex32
    paid: LogRef


class DeliverySection(Model):
    """The delivery: the digest posted and when."""

    release_digest: Hex32
    delivered_at: Int
    dispute_deadline: Int
    event: LogRef


class CodeProofSection(Model):
    """One code's public proof material: its commitment and Merkle proof under a batch root."""

    index: Int
    commitment: Hex32
    batch_index: Int
    proof: list[Hex32]


class ReleaseSection(Model):
    """Release v2's public parts; the sealed bytes are the ERC-1497 file (``fileURI``).

    ``source`` is ``chain`` when the sealed bytes and these parts were read from the
    ReleasePublished log at ``published`` (an order delivered with ``deliverOnChain``); both are
    absent when a party gave the release (the supplier's backend, the buyer's saved copy).
    """

    element_root: Hex32
    key_hash: Hex32 | None = None
    codes: list[CodeProofSection]
    source: Literal["chain"] | None = None
    published: LogRef | None = None


class OpenedCode(Model):
    """One code as the opened release holds it, and whether it matches its commitment."""

    index: Int
    salt: Hex32
    ciphertext: HexData
    code: Base64
    expires_at: Int
    commitment: Hex32
    matches_commitment: bool


class BadCodeProofSection(Model):
    """The argument of ``proveBadCode`` for one code that does not match its commitment."""

    sealed_hash: Hex32
    key: Hex32
    index: Int
    salt: Hex32
    ciphertext: HexData
    element_proof: list[Hex32]
    batch_index: Int
    committed: Hex32
    leaf_proof: list[Hex32]


class OpeningSection(Model):
    """What the buyer's secret shows: the release opened, and each code against its leaf."""

    opens: bool
    problem: str | None = None
    key: Hex32 | None = None
    element_root: Hex32 | None = None
    digest: Hex32 | None = None
    digest_matches_chain: bool
    codes: list[OpenedCode]
    bad_code_proofs: list[BadCodeProofSection]


class DisputeSection(Model):
    """The dispute: when, until when, and the buyer's opening statement."""

    opened_at: Int
    arbitration_deadline: Int
    evidence_uri: str
    evidence_hash: Hex32
    event: LogRef


class EvidenceItem(Model):
    """Evidence a party added to the dispute (EvidenceAdded)."""

    party: Address
    uri: str
    evidence_hash: Hex32
    event: LogRef


class RulingSection(Model):
    """The ruling: by an arbiter, by the timeout fallback, or by a bad-code proof."""

    kind: Literal["arbiter", "timeout", "bad-code-proven"]
    arbiter: Address
    buyer_bps: Int
    slash_bps: Int
    buyer_amount: Uint
    supplier_amount: Uint
    slashed: Uint
    bundle_hash: Hex32
    reason: Hex32
    reason_text: str
    ruled_at: Int
    event: LogRef


class BuyerAddition(Model):
    """The buyer's per-order X25519 secret: it opens this order's release and nothing else."""

    order_secret: Hex32


class SupplierCode(Model):
    """A code the supplier says it sent, and what that claim amounts to."""

    index: Int
    salt: Hex32
    code: Base64
    commitment: Hex32
    matches_commitment: bool | None = None
    matches_release: bool | None = None


class SupplierAddition(Model):
    """The salts and plaintext codes the supplier says it sent."""

    codes: list[SupplierCode]


class Additions(Model):
    """What only a party can give."""

    buyer: BuyerAddition | None = None
    supplier: SupplierAddition | None = None


class EvidenceBundle(Model):
    """The evidence bundle: ERC-1497 Evidence fields and kameng's sections."""

    name: str
    description: str
    file_uri: str | None = None
    file_hash: Multihash | None = None
    file_type_extension: str | None = None
    self_hash: Multihash
    format: Literal["kameng.evidence.v2"]
    chain_id: Int
    escrow: Address
    escrow_code_hash: Hex32
    order_id: Uint
    as_of: BlockRef
    listing: ListingSection
    batches: list[BatchSection]
    order: OrderSection
    delivery: DeliverySection | None = None
    release: ReleaseSection | None = None
    opening: OpeningSection | None = None
    dispute: DisputeSection | None = None
    evidence: list[EvidenceItem]
    ruling: RulingSection | None = None
    events: list[EventRecord]
    transactions: list[TxRecord]
    additions: Additions


def to_json(model: BaseModel) -> object:
    """A model as the JSON value the bundle holds (camelCase keys, empty options left out)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
