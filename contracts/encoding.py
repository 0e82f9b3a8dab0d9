"""Byte encodings shared by the contract and the off-chain code. docs/PROTOCOL.md specifies them.

- commitment = keccak256("kameng.code.v1" || salt[32] || code bytes)
- leaf       = keccak256(keccak256(abi.encode(uint256 index, bytes32 commitment)))
- batch root = OpenZeppelin MerkleProof tree over the leaves (sorted pairs)
- release digest = keccak256(sealed release bytes)
- order id   = listingId << 32 | firstIndex
- order hash = keccak256(abi.encode(Order))

The Order's field order and types come from the committed ABI (`contracts.layout`): the tuple
type is computed from it and the `Order` dataclass is checked against it when this module loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, replace
from enum import IntEnum
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from contracts.layout import escrow_struct, python_type

COMMITMENT_DOMAIN = b"kameng.code.v1"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_DIGEST = b"\0" * 32

#: The Order struct as the committed ABI declares it (``confirm(uint256, Order)`` and the rest).
ORDER_LAYOUT = escrow_struct("Order")
#: ``(address,address,address,address,uint128,uint128,uint32,uint16,uint16,uint32,uint40,uint8,
#: bytes32)``, computed from the ABI.
ORDER_ABI_TYPE = ORDER_LAYOUT.abi_type
#: The Order's fields in ABI order, in snake_case (``release_digest``).
ORDER_FIELDS = ORDER_LAYOUT.fields


class OrderState(IntEnum):
    """The contract's OrderState enum."""

    NONE = 0
    PAID = 1
    DELIVERED = 2
    DISPUTED = 3
    COMPLETED = 4
    REFUNDED = 5
    RESOLVED = 6


def _digest_bytes(value: Any) -> bytes:
    """A bytes32 value given as bytes or 0x hex."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


@lru_cache(maxsize=65_536)
def _checksummed(address: str) -> str:
    """`to_checksum_address`, remembered: a keccak per call, and the delivery agent decodes
    the same buyers, suppliers and tokens in every order of every pass (issue 17's profile:
    7-9% of the agent's time)."""
    return to_checksum_address(address)


def _reader(component: Mapping[str, Any]) -> Callable[[Any], Any]:
    """How a value of one Order component becomes the dataclass field's Python value."""
    kind = python_type(component)
    if component["type"] == "address":
        return lambda v: _checksummed(str(v))
    if kind == OrderState.__name__:
        return lambda v: OrderState(int(v))
    if kind == "bytes":
        return _digest_bytes
    return int


#: (field, reader) for every Order field, in ABI order.
_ORDER_READERS = tuple((name, _reader(ORDER_LAYOUT.component(name))) for name in ORDER_FIELDS)


@dataclass(frozen=True)
class Order:
    """The contract's Order struct; only its hash is stored on-chain.

    The fields are the ABI's, in its order (checked against the committed ABI at import).
    """

    buyer: str
    supplier: str
    token: str
    reseller: str
    amount: int
    bond: int
    quantity: int
    fee_bps: int
    reseller_cut: int
    dispute_window: int
    deadline: int
    state: OrderState
    release_digest: bytes

    def as_tuple(self) -> tuple[object, ...]:
        """The struct as web3 and eth_abi take it (ABI order)."""
        return astuple(self)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Order:
        """Build from a mapping keyed by the struct's snake_case field names.

        Addresses are checksummed, integers may be ints or decimal strings, the state an int
        and the digest bytes or 0x hex.

        Raises:
            KeyError: a field is missing.
        """
        return cls(**{name: read(fields[name]) for name, read in _ORDER_READERS})

    @classmethod
    def from_tuple(cls, values: Sequence[object]) -> Order:
        """Build from a decoded struct (a tuple in ABI order)."""
        return cls.from_fields(ORDER_LAYOUT.as_dict(values))

    @classmethod
    def from_record(cls, rec: Any) -> Order:
        """Build from any record with the struct's field names (a mirror row, an API model, a
        bundle section): amounts may be ints or decimal strings, the digest bytes or 0x hex."""
        return cls.from_fields({name: getattr(rec, name) for name in ORDER_FIELDS})

    def encode(self) -> bytes:
        """``abi.encode(order)``."""
        return abi_encode([ORDER_ABI_TYPE], [self.as_tuple()])

    @classmethod
    def decode(cls, data: bytes) -> Order:
        """The inverse of `encode`."""
        (values,) = abi_decode([ORDER_ABI_TYPE], data)
        return cls.from_tuple(values)

    def hash(self) -> bytes:
        """keccak256(abi.encode(order)), as the contract stores it."""
        return keccak(self.encode())

    def with_changes(self, **changes: object) -> Order:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


# A struct changed in Solidity must fail here, not as EscrowUnknownOrder on every later call.
ORDER_LAYOUT.check_dataclass(Order)


def order_id(listing_id: int, first_index: int) -> int:
    """The order id the contract assigns: ``listingId << 32 | firstIndex``."""
    return (listing_id << 32) | first_index


def split_order_id(oid: int) -> tuple[int, int]:
    """The listing id and first code index packed into an order id."""
    return oid >> 32, oid & 0xFFFFFFFF


def commitment(salt: bytes, code: bytes) -> bytes:
    """The salted commitment to one code."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    return keccak(COMMITMENT_DOMAIN + salt + code)


def leaf(index: int, code_commitment: bytes) -> bytes:
    """The double-hashed Merkle leaf binding a commitment to its code index in the listing."""
    return keccak(keccak(abi_encode(["uint256", "bytes32"], [index, code_commitment])))


def release_digest(sealed_release: bytes) -> bytes:
    """The digest posted on-chain for a sealed release."""
    return keccak(sealed_release)


MAX_CODE_BYTES = 256


def keystream_xor(key: bytes, index: int, data: bytes) -> bytes:
    """Release v2 cipher: XOR with blocks ``keccak256(abi.encode(key, index, b))``."""
    if len(key) != 32:
        raise ValueError("key must be 32 bytes")
    out = bytearray(data)
    for b in range(0, len(data), 32):
        pad = keccak(abi_encode(["bytes32", "uint256", "uint256"], [key, index, b // 32]))
        for j in range(b, min(b + 32, len(data))):
            out[j] ^= pad[j - b]
    return bytes(out)


def element_leaf(index: int, salt: bytes, ciphertext: bytes) -> bytes:
    """Release v2: the leaf of one encrypted code in the release's element tree."""
    inner = abi_encode(["uint256", "bytes32", "bytes32"], [index, salt, keccak(ciphertext)])
    return keccak(keccak(inner))


def release_digest_v2(sealed_hash: bytes, element_root: bytes, key: bytes) -> bytes:
    """Release v2: the digest posted on-chain, binding the sealed box, the elements and the key."""
    key_hash = keccak(abi_encode(["bytes32"], [key]))
    return keccak(
        abi_encode(["bytes32", "bytes32", "bytes32"], [sealed_hash, element_root, key_hash])
    )


def sku_id(name: str) -> bytes:
    """A product id (sku) from its name: keccak256 of the UTF-8 name."""
    return keccak(text=name)


@dataclass(frozen=True)
class PublishedRelease:
    """A sealed release as `deliverOnChain` carries and ReleasePublished emits it (the ABI's
    ``PublishedRelease``): the sealed box, the rest of the digest's preimage, and the codes'
    public proofs (`encode_release_proofs`)."""

    sealed_release: bytes
    element_root: bytes
    key_hash: bytes
    proofs: bytes

    def as_tuple(self) -> tuple[object, ...]:
        """The ABI tuple for a contract call."""
        return astuple(self)

    def digest(self) -> bytes:
        """The release digest these parts hash to."""
        return release_digest_from_parts(
            keccak(self.sealed_release), self.element_root, self.key_hash
        )


escrow_struct("PublishedRelease").check_dataclass(PublishedRelease)


def release_digest_from_parts(sealed_hash: bytes, element_root: bytes, key_hash: bytes) -> bytes:
    """Release v2's digest from the public parts that `deliverOnChain` publishes: the same value
    as `release_digest_v2`, with ``key_hash = keccak256(abi.encode(key))`` in place of the key."""
    return keccak(
        abi_encode(["bytes32", "bytes32", "bytes32"], [sealed_hash, element_root, key_hash])
    )


#: One code's public proof material in a published release: (index, commitment, batch index,
#: Merkle proof of ``leaf(index, commitment)`` under that batch's root).
ProofItem = tuple[int, bytes, int, list[bytes]]

_PROOFS_TYPE = "(uint256,bytes32,uint256,bytes32[])[]"


def encode_release_proofs(items: Sequence[ProofItem]) -> bytes:
    """The ``proofs`` field of a `PublishedRelease`:
    ``abi.encode((uint256 index, bytes32 commitment, uint256 batchIndex, bytes32[] proof)[])``."""
    return abi_encode(
        [_PROOFS_TYPE],
        [[(index, bytes(c), batch, [bytes(p) for p in proof]) for index, c, batch, proof in items]],
    )


def decode_release_proofs(data: bytes) -> list[ProofItem]:
    """Inverse of `encode_release_proofs`.

    Raises:
        ValueError: the bytes are not that encoding.
    """
    try:
        (rows,) = abi_decode([_PROOFS_TYPE], data)
    except Exception as exc:  # eth_abi raises several decoding errors
        raise ValueError(f"the release's proofs are not valid ABI: {exc}") from exc
    return [(int(i), bytes(c), int(b), [bytes(p) for p in proof]) for i, c, b, proof in rows]
