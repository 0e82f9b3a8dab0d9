"""Sealed releases: the format, fetching one, and the buyer's verification.

Public API (stable; the API helper codes against it):

- `Release`: what a buyer fetches (pydantic; bytes travel as 0x hex in JSON).
- `get_release(session, order_id) -> Release`
- `verify_release(release, private_key, *, chain_id, escrow, onchain_digest, quantity, batches)
  -> VerifiedRelease` (pure; raises `ReleaseInvalid`)
- `verify_release_onchain(release, private_key, escrow) -> VerifiedRelease` (reads the digest,
  quantity and batch roots from the chain)

The format is specified in docs/RELEASE.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, PlainSerializer, WithJsonSchema

if TYPE_CHECKING:
    from nacl.public import PrivateKey
    from sqlalchemy.orm import Session

    from contracts.client import EscrowClient


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
        batch_root: That batch's Merkle root (check it against `getBatch` on-chain).
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
        sealed: The libsodium sealed box; keccak256 of these bytes is the on-chain digest.
        digest: keccak256(sealed).
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


def get_release(session: Session, order_id: int) -> Release:
    """Load the sealed release of an order.

    Raises:
        ReleaseNotFound: none is stored (yet) for that order.
    """
    raise NotImplementedError


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
    raise NotImplementedError


def verify_release_onchain(
    release: Release, private_key: PrivateKey, escrow: EscrowClient, from_block: int = 0
) -> VerifiedRelease:
    """`verify_release` with the digest, quantity and batch roots read from the chain.

    Raises:
        ReleaseInvalid: as `verify_release`, or the order has no OrderDelivered event yet.
    """
    raise NotImplementedError
