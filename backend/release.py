"""Sealed releases: the format, sealing, and the buyer's verification (no database here).

Public API (stable; the API helper codes against it):

- `Release`: what a buyer fetches (pydantic; bytes travel as 0x hex in JSON); the stored rows
  are read by `backend.release_store` (`get_release(session, order_id) -> Release`).
- `verify_release(release, private_key, *, chain_id, escrow, onchain_digest, quantity, batches)
  -> VerifiedRelease` (pure; raises `ReleaseInvalid`)
- `verify_release_onchain(release, private_key, escrow) -> VerifiedRelease` (reads the digest,
  quantity and batch roots from the chain)

The format is specified in docs/RELEASE.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from pydantic import BaseModel, BeforeValidator, PlainSerializer, WithJsonSchema

from backend.errors import ReleaseInvalid
from contracts.encoding import (
    PublishedRelease,
    commitment,
    decode_release_proofs,
    element_leaf,
    encode_release_proofs,
    keystream_xor,
    leaf,
    release_digest_v2,
    split_order_id,
)
from contracts.merkle import MerkleTree
from contracts.merkle import verify as merkle_verify

if TYPE_CHECKING:
    from contracts.client import EscrowClient

#: The first field of every payload: names the format.
PAYLOAD_TAG = "kameng.release.v2"
#: abi types of the payload: tag, chain id, escrow, order id, release key, codes.
PAYLOAD_TYPES = (
    "string",
    "uint256",
    "address",
    "uint256",
    "bytes32",
    "(uint256,bytes32,bytes,uint64)[]",
)
#: Release states in which the sealed bytes are (or will be) the ones on-chain.
LIVE_STATES = frozenset({"prepared", "sent", "confirmed"})


def _from_hex(value: Any) -> Any:
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        return bytes.fromhex(text)
    return value


def _to_hex(value: bytes) -> str:
    return "0x" + value.hex()


HexBytes = Annotated[
    bytes,
    BeforeValidator(_from_hex),
    PlainSerializer(_to_hex, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^0x([0-9a-f]{2})*$"}),
]


class CodeProof(BaseModel):
    """Public proof material for one code of a release (no secret in it).

    Attributes:
        index: The code's index in its listing.
        commitment: keccak256("kameng.code.v1" || salt || code).
        batch_index: The batch that committed it.
        batch_root: That batch's Merkle root (check it against the batch stored on-chain).
        proof: Sibling path from the code's leaf to the root (OpenZeppelin MerkleProof).
    """

    index: int
    commitment: HexBytes
    batch_index: int
    batch_root: HexBytes
    proof: list[HexBytes]


class Release(BaseModel):
    """A sealed release as the buyer fetches it.

    Attributes:
        order_id: The order.
        chain_id: The chain the escrow is on.
        escrow: The escrow's address.
        buyer: The order's buyer.
        listing_id: The listing (``order_id >> 32``).
        first_index: The first code index (``order_id & 0xffffffff``).
        quantity: Number of codes.
        sealed: The libsodium sealed box (its payload: docs/RELEASE.md).
        digest: The on-chain digest, release v2:
            keccak256(abi.encode(keccak256(sealed), element_root, keccak256(abi.encode(key)))).
        element_root: Merkle root over the encrypted codes' element leaves (the buyer recomputes
            it after opening the box).
        key_hash: keccak256(abi.encode(key)). With `element_root` and the sealed bytes it lets
            anyone recompute the on-chain digest without the key; it reveals nothing about it.
        codes: Per code, its public proof material, in index order.
        state: ``prepared``, ``sent`` or ``confirmed`` (the digest is on-chain).
        tx_hash: The delivering transaction once confirmed.
    """

    order_id: int
    chain_id: int
    escrow: str
    buyer: str
    listing_id: int
    first_index: int
    quantity: int
    sealed: HexBytes
    digest: HexBytes
    element_root: HexBytes
    key_hash: HexBytes | None = None
    codes: list[CodeProof]
    state: str
    tx_hash: str | None = None


@dataclass(frozen=True)
class ReleasedCode:
    """One opened and verified code. Its `repr` never shows the code or the salt.

    Attributes:
        index: The code's index in its listing.
        code: The plaintext code.
        salt: Its commitment salt.
        commitment: Its commitment.
        expires_at: Unix expiry the supplier gave, 0 for none.
    """

    index: int
    code: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    commitment: bytes
    expires_at: int = 0

    def text(self) -> str:
        """The code as text (codes are UTF-8)."""
        return self.code.decode("utf-8")


@dataclass(frozen=True)
class VerifiedRelease:
    """A release that opened with the buyer's key and matched the chain in every respect."""

    order_id: int
    codes: list[ReleasedCode]


# ------------------------------------------------------------------ format


@dataclass(frozen=True)
class CodeToSeal:
    """One code going into a release, with its public proof material. `repr` hides secrets."""

    index: int
    code: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    commitment: bytes
    batch_index: int
    batch_root: bytes
    proof: list[bytes]
    expires_at: int = 0


@dataclass(frozen=True)
class BuiltRelease:
    """A freshly sealed release, before it is stored."""

    sealed: bytes
    digest: bytes
    element_root: bytes
    manifest: str


def _element_leaves(items: Sequence[tuple[int, bytes, bytes]]) -> list[bytes]:
    """Element leaves of (index, salt, ciphertext) triples."""
    return [element_leaf(index, salt, ct) for index, salt, ct in items]


def encode_payload(
    *,
    chain_id: int,
    escrow: str,
    order_id: int,
    key: bytes,
    codes: Sequence[tuple[int, bytes, bytes, int]],
) -> bytes:
    """The plaintext inside the sealed box (docs/RELEASE.md).

    Args:
        chain_id: The chain.
        escrow: The escrow address.
        order_id: The order.
        key: The release key (32 bytes).
        codes: (index, salt, ciphertext, expires_at) per code, in index order.
    """
    return abi_encode(
        PAYLOAD_TYPES,
        [
            PAYLOAD_TAG,
            chain_id,
            to_checksum_address(escrow),
            order_id,
            key,
            [(i, salt, ct, exp) for i, salt, ct, exp in codes],
        ],
    )


def decode_payload(
    data: bytes,
) -> tuple[str, int, str, int, bytes, list[tuple[int, bytes, bytes, int]]]:
    """Decode a payload; see `encode_payload`.

    Raises:
        ValueError: it is not a well-formed payload.
    """
    try:
        tag, chain_id, escrow, order_id, key, codes = abi_decode(PAYLOAD_TYPES, data)
    except Exception as exc:  # eth_abi raises several decoding error types
        raise ValueError(f"malformed release payload: {type(exc).__name__}") from exc
    return (
        str(tag),
        int(chain_id),
        to_checksum_address(escrow),
        int(order_id),
        bytes(key),
        [(int(i), bytes(salt), bytes(ct), int(exp)) for i, salt, ct, exp in codes],
    )


def seal_release(
    *,
    chain_id: int,
    escrow: str,
    order_id: int,
    buyer_pubkey: bytes,
    codes: Sequence[CodeToSeal],
) -> BuiltRelease:
    """Build a release v2 for an order: encrypt each code under a fresh release key, seal the
    payload to the buyer's X25519 key, and compute the digest that goes on-chain.

    Sealing is randomized (a fresh release key and ephemeral box key), which is why the agent
    stores the result before posting its digest and never seals the same order twice.
    """
    key = os.urandom(32)
    items = []
    for c in codes:
        ct = keystream_xor(key, c.index, c.code)
        items.append((c.index, c.salt, ct, c.expires_at))
    element_root = MerkleTree(_element_leaves([(i, s, ct) for i, s, ct, _ in items])).root
    payload = encode_payload(
        chain_id=chain_id, escrow=escrow, order_id=order_id, key=key, codes=items
    )
    sealed = bytes(SealedBox(PublicKey(buyer_pubkey)).encrypt(payload))
    digest = release_digest_v2(keccak(sealed), element_root, key)
    manifest = json.dumps(
        {
            "element_root": "0x" + element_root.hex(),
            "key_hash": "0x" + keccak(abi_encode(["bytes32"], [key])).hex(),
            "codes": [
                {
                    "index": c.index,
                    "commitment": "0x" + c.commitment.hex(),
                    "batch_index": c.batch_index,
                    "batch_root": "0x" + c.batch_root.hex(),
                    "proof": ["0x" + p.hex() for p in c.proof],
                }
                for c in codes
            ],
        },
        separators=(",", ":"),
    )
    return BuiltRelease(sealed=sealed, digest=digest, element_root=element_root, manifest=manifest)


# ------------------------------------------------------------------ verification


def open_release(release: Release, private_key: PrivateKey) -> bytes:
    """Open the sealed box.

    Raises:
        ReleaseInvalid: it does not open (tampered bytes or another key).
    """
    try:
        return bytes(SealedBox(private_key).decrypt(release.sealed))
    except CryptoError as exc:
        raise ReleaseInvalid(
            "cannot-open",
            f"the sealed release of order {release.order_id} does not open with this key: its "
            "bytes were altered, or the key is not this order's key",
        ) from exc


def verify_release(
    release: Release,
    private_key: PrivateKey,
    *,
    chain_id: int,
    escrow: str,
    onchain_digest: bytes,
    quantity: int,
    batches: Mapping[int, tuple[bytes, int, int]],
) -> VerifiedRelease:
    """Open a release and check it against facts the buyer took from the chain.

    Args:
        release: The fetched release (only its `sealed` bytes and `order_id` are trusted as input;
            every other field is checked).
        private_key: The buyer's per-order X25519 key (`backend.keys`).
        chain_id: The chain the buyer paid on.
        escrow: The escrow the buyer paid.
        onchain_digest: The digest in the order's OrderDelivered event.
        quantity: The order's quantity from OrderPaid.
        batches: On-chain batches of the listing by batch index: (root, first index, count).

    Raises:
        ReleaseInvalid: digest mismatch, the box does not open (tampered or wrong key), the
            payload names another order, chain, escrow or index range, or a code does not
            match its commitment and proof.
    """
    oid = release.order_id
    _, first_index = split_order_id(oid)
    sealed_hash = keccak(release.sealed)
    payload = open_release(release, private_key)
    try:
        tag, p_chain, p_escrow, p_order, key, items = decode_payload(payload)
    except ValueError as exc:
        raise ReleaseInvalid("bad-payload", str(exc)) from exc
    if tag != PAYLOAD_TAG:
        raise ReleaseInvalid("bad-payload", f"unknown release format {tag[:40]!r}")
    if p_chain != chain_id or p_escrow.lower() != escrow.lower() or p_order != oid:
        raise ReleaseInvalid(
            "wrong-order",
            f"the release is for order {p_order} of escrow {p_escrow} on chain {p_chain}, "
            f"not order {oid} of {escrow} on chain {chain_id}",
        )
    expected = list(range(first_index, first_index + quantity))
    if [i for i, *_ in items] != expected:
        raise ReleaseInvalid(
            "wrong-indexes",
            f"the release holds indexes {[i for i, *_ in items][:8]}..., expected "
            f"{first_index}..{first_index + quantity - 1}",
        )
    element_root = MerkleTree(_element_leaves([(i, s, ct) for i, s, ct, _ in items])).root
    digest = release_digest_v2(sealed_hash, element_root, key)
    if digest != onchain_digest:
        raise ReleaseInvalid(
            "digest-mismatch",
            f"the release's digest 0x{digest.hex()} is not the one on-chain "
            f"(0x{onchain_digest.hex()}): these are not the bytes the supplier committed to",
        )
    proofs = {c.index: c for c in release.codes}
    out: list[ReleasedCode] = []
    for index, salt, ct, expires_at in items:
        code = keystream_xor(key, index, ct)
        claim = proofs.get(index)
        if claim is None:
            raise ReleaseInvalid("missing-proof", f"no commitment or proof for index {index}")
        if commitment(salt, code) != claim.commitment:
            raise ReleaseInvalid(
                "commitment-mismatch",
                f"the code at index {index} does not match its commitment; prove it on-chain "
                "with proveBadCode or dispute the order",
            )
        batch = batches.get(claim.batch_index)
        if batch is None:
            raise ReleaseInvalid("unknown-batch", f"batch {claim.batch_index} is not on-chain")
        root, batch_first, batch_count = batch
        if not batch_first <= index < batch_first + batch_count:
            raise ReleaseInvalid(
                "batch-range", f"index {index} is not in batch {claim.batch_index}"
            )
        if not merkle_verify(list(claim.proof), root, leaf(index, claim.commitment)):
            raise ReleaseInvalid(
                "proof-mismatch",
                f"the commitment of index {index} is not under batch {claim.batch_index}'s "
                "on-chain root",
            )
        out.append(ReleasedCode(index, code, salt, claim.commitment, expires_at))
    return VerifiedRelease(order_id=oid, codes=out)


def onchain_order_facts(
    escrow: EscrowClient, order_id: int, from_block: int = 0
) -> tuple[int, bytes | None]:
    """The quantity (from OrderPaid) and the delivered digest (from OrderDelivered, or None).

    Raises:
        ReleaseInvalid: the order has no OrderPaid event.
    """
    codec = escrow.codec
    topics = [
        ["0x" + codec.topic("OrderPaid").hex(), "0x" + codec.topic("OrderDelivered").hex()],
        "0x" + order_id.to_bytes(32, "big").hex(),
    ]
    logs = escrow.logs(from_block, "latest", topics)
    quantity: int | None = None
    digest: bytes | None = None
    for raw in logs:
        ev = codec.decode_log(raw)
        if ev is None:
            continue
        if ev.name == "OrderPaid":
            quantity = int(ev.args["quantity"])
        elif ev.name == "OrderDelivered":
            digest = bytes(ev.args["releaseDigest"])
    if quantity is None:
        raise ReleaseInvalid("unknown-order", f"order {order_id} was never paid on this escrow")
    return quantity, digest


def verify_release_onchain(
    release: Release, private_key: PrivateKey, escrow: EscrowClient, from_block: int = 0
) -> VerifiedRelease:
    """`verify_release` with the digest, quantity and batch roots read from the chain.

    Args:
        release: The fetched release.
        private_key: The buyer's per-order key.
        escrow: The escrow the buyer paid.
        from_block: Where to start looking for the order's events (its paid block is best).

    Raises:
        ReleaseInvalid: as `verify_release`, or the order has no OrderDelivered event yet.
    """
    quantity, digest = onchain_order_facts(escrow, release.order_id, from_block)
    if digest is None:
        raise ReleaseInvalid(
            "not-delivered",
            f"order {release.order_id} has no OrderDelivered event yet; wait a block and retry",
        )
    listing_id, _ = split_order_id(release.order_id)
    batches = {c.batch_index: escrow.batch(listing_id, c.batch_index) for c in release.codes}
    return verify_release(
        release,
        private_key,
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        onchain_digest=digest,
        quantity=quantity,
        batches=batches,
    )


@dataclass(frozen=True)
class BadCodeProof:
    """The argument of ``proveBadCode`` for one code of a release (ICodeEscrow.BadCodeProof).

    Submitting it reveals this one code and the order's release key.
    """

    sealed_hash: bytes
    key: bytes = field(repr=False)
    index: int
    salt: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    element_proof: list[bytes]
    batch_index: int
    committed: bytes
    leaf_proof: list[bytes]

    def as_tuple(self) -> tuple[object, ...]:
        """As the ABI takes it."""
        return (
            self.sealed_hash,
            self.key,
            self.index,
            self.salt,
            self.ciphertext,
            self.element_proof,
            self.batch_index,
            self.committed,
            self.leaf_proof,
        )


def bad_code_proof(release: Release, private_key: PrivateKey, index: int) -> BadCodeProof:
    """Build the on-chain proof that the code at `index` does not match its commitment.

    The committed value and its leaf proof come from the release's public proof material; check
    them against the batch root first (`verify_release` reports ``commitment-mismatch`` only
    after the digest matched, which is when this proof can win).

    Raises:
        ReleaseInvalid: the box does not open, or the index is not in the release.
    """
    payload = open_release(release, private_key)
    try:
        _, _, _, _, key, items = decode_payload(payload)
    except ValueError as exc:
        raise ReleaseInvalid("bad-payload", str(exc)) from exc
    positions = {i: j for j, (i, *_) in enumerate(items)}
    claims = {c.index: c for c in release.codes}
    if index not in positions or index not in claims:
        raise ReleaseInvalid("missing-proof", f"index {index} is not in this release")
    tree = MerkleTree(_element_leaves([(i, s, ct) for i, s, ct, _ in items]))
    _, salt, ciphertext, _ = items[positions[index]]
    claim = claims[index]
    return BadCodeProof(
        sealed_hash=keccak(release.sealed),
        key=key,
        index=index,
        salt=salt,
        ciphertext=ciphertext,
        element_proof=tree.proof(positions[index]),
        batch_index=claim.batch_index,
        committed=claim.commitment,
        leaf_proof=list(claim.proof),
    )


# ------------------------------------------------------------------ on-chain releases


def published_from_manifest(sealed: bytes, manifest: str) -> PublishedRelease:
    """The `PublishedRelease` that `deliverOnChain` carries for a stored release: its sealed
    bytes, and from its manifest the element root, the key hash and each code's proof."""
    m = json.loads(manifest)
    proofs = encode_release_proofs(
        [
            (
                int(c["index"]),
                bytes.fromhex(c["commitment"][2:]),
                int(c["batch_index"]),
                [bytes.fromhex(p[2:]) for p in c["proof"]],
            )
            for c in m["codes"]
        ]
    )
    return PublishedRelease(
        sealed_release=sealed,
        element_root=bytes.fromhex(m["element_root"][2:]),
        key_hash=bytes.fromhex(m["key_hash"][2:]),
        proofs=proofs,
    )


def release_from_published(
    published: PublishedRelease,
    *,
    order_id: int,
    chain_id: int,
    escrow: str,
    buyer: str,
    quantity: int,
    batch_roots: Mapping[int, bytes],
    tx_hash: str | None = None,
) -> Release:
    """A `Release` rebuilt from a ReleasePublished event alone (no backend), which
    `verify_release` then checks like a fetched one.

    Args:
        published: The event's release.
        order_id: The order.
        chain_id: The chain.
        escrow: The escrow.
        buyer: The order's buyer (from OrderPaid).
        quantity: The order's quantity (from OrderPaid).
        batch_roots: The on-chain root of every batch the proofs cite, by batch index.
        tx_hash: The delivering transaction.

    Raises:
        ReleaseInvalid: the proofs do not decode, or cite a batch missing from `batch_roots`.
    """
    try:
        items = decode_release_proofs(published.proofs)
    except ValueError as exc:
        raise ReleaseInvalid("bad-proofs", f"order {order_id}: {exc}") from exc
    listing_id, first_index = split_order_id(order_id)
    codes = []
    for index, code_commitment, batch_index, proof in items:
        root = batch_roots.get(batch_index)
        if root is None:
            raise ReleaseInvalid(
                "unknown-batch", f"order {order_id} cites batch {batch_index}, not on-chain"
            )
        codes.append(
            CodeProof(
                index=index,
                commitment=code_commitment,
                batch_index=batch_index,
                batch_root=root,
                proof=proof,
            )
        )
    return Release(
        order_id=order_id,
        chain_id=chain_id,
        escrow=escrow,
        buyer=buyer,
        listing_id=listing_id,
        first_index=first_index,
        quantity=quantity,
        sealed=published.sealed_release,
        digest=published.digest(),
        element_root=published.element_root,
        key_hash=published.key_hash,
        codes=codes,
        state="confirmed",
        tx_hash=tx_hash,
    )
