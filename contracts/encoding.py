"""Byte encodings shared by the contract and the off-chain code. docs/PROTOCOL.md specifies them.

- commitment = keccak256("kameng.code.v1" || salt[32] || code bytes)
- leaf       = keccak256(keccak256(abi.encode(uint256 index, bytes32 commitment)))
- batch root = OpenZeppelin MerkleProof tree over the leaves (sorted pairs)
- release digest = keccak256(sealed release bytes)
- order id   = listingId << 32 | firstIndex
- order hash = keccak256(abi.encode(Order))
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace
from enum import IntEnum
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

COMMITMENT_DOMAIN = b"kameng.code.v1"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ORDER_ABI_TYPE = (
    "(address,address,address,address,uint128,uint128,uint32,uint16,uint16,uint32,uint40,"
    "uint8,bytes32)"
)


class OrderState(IntEnum):
    """The contract's OrderState enum."""

    NONE = 0
    PAID = 1
    DELIVERED = 2
    DISPUTED = 3
    COMPLETED = 4
    REFUNDED = 5
    RESOLVED = 6


@dataclass(frozen=True)
class Order:
    """The contract's Order struct; only its hash is stored on-chain."""

    buyer: str
    supplier: str
    token: str
    referrer: str
    amount: int
    bond: int
    quantity: int
    fee_bps: int
    referral_bps: int
    dispute_window: int
    deadline: int
    state: OrderState
    release_digest: bytes

    def as_tuple(self) -> tuple[object, ...]:
        """The struct as web3 and eth_abi take it."""
        return astuple(self)

    @classmethod
    def from_tuple(cls, values: tuple[object, ...] | list[object]) -> Order:
        """Build from a decoded struct."""
        (
            buyer,
            supplier,
            token,
            referrer,
            amount,
            bond,
            quantity,
            fee_bps,
            referral_bps,
            dispute_window,
            deadline,
            state,
            digest,
        ) = values
        return cls(
            buyer=to_checksum_address(str(buyer)),
            supplier=to_checksum_address(str(supplier)),
            token=to_checksum_address(str(token)),
            referrer=to_checksum_address(str(referrer)),
            amount=int(amount),  # type: ignore[call-overload]
            bond=int(bond),  # type: ignore[call-overload]
            quantity=int(quantity),  # type: ignore[call-overload]
            fee_bps=int(fee_bps),  # type: ignore[call-overload]
            referral_bps=int(referral_bps),  # type: ignore[call-overload]
            dispute_window=int(dispute_window),  # type: ignore[call-overload]
            deadline=int(deadline),  # type: ignore[call-overload]
            state=OrderState(int(state)),  # type: ignore[call-overload]
            release_digest=bytes(digest),  # type: ignore[call-overload]
        )

    @classmethod
    def from_record(cls, rec: Any) -> Order:
        """Build from any record with the struct's field names (a mirror row, an API model, a
        bundle section): amounts may be ints or decimal strings, the digest bytes or 0x hex."""
        digest = rec.release_digest
        if isinstance(digest, str):
            digest = bytes.fromhex(digest.removeprefix("0x"))
        return cls(
            buyer=to_checksum_address(rec.buyer),
            supplier=to_checksum_address(rec.supplier),
            token=to_checksum_address(rec.token),
            referrer=to_checksum_address(rec.referrer),
            amount=int(rec.amount),
            bond=int(rec.bond),
            quantity=int(rec.quantity),
            fee_bps=int(rec.fee_bps),
            referral_bps=int(rec.referral_bps),
            dispute_window=int(rec.dispute_window),
            deadline=int(rec.deadline),
            state=OrderState(int(rec.state)),
            release_digest=bytes(digest),
        )

    def hash(self) -> bytes:
        """keccak256(abi.encode(order)), as the contract stores it."""
        return keccak(abi_encode([ORDER_ABI_TYPE], [self.as_tuple()]))

    def with_changes(self, **changes: object) -> Order:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


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
