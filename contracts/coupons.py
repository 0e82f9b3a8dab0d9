"""Coupons: discounts a listing's supplier signs off-chain (EIP-712) and a buyer presents to
``buyWithCoupon`` (docs/PROTOCOL.md, "Coupons").

A coupon travels as text, in a share link or pasted: ``base64url`` (no padding) of one version
byte (1) and the fields packed big-endian at fixed widths (listingId 32 bytes, sku 32, buyer 20,
discountBps 2, amountOff 12, maxUses 4, expiry 5, id 8), then the EIP-2098 compact signature
(r 32, vs 32): 180 bytes, 240 characters. ``backend/web/src/coupons.js`` reads and writes the
same form.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from contracts.order_rules import BPS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from eth_account.signers.local import LocalAccount

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: The EIP-712 domain's name and version (the chain id and the escrow complete it).
DOMAIN_NAME = "kameng"
DOMAIN_VERSION = "1"
#: The coupon's EIP-712 type, as ``CodeEscrow.COUPON_TYPEHASH`` hashes it.
COUPON_TYPE = [
    {"name": "listingId", "type": "uint256"},
    {"name": "sku", "type": "bytes32"},
    {"name": "buyer", "type": "address"},
    {"name": "discountBps", "type": "uint16"},
    {"name": "amountOff", "type": "uint96"},
    {"name": "maxUses", "type": "uint32"},
    {"name": "expiry", "type": "uint40"},
    {"name": "id", "type": "uint64"},
]
TYPE_STRING = "Coupon(" + ",".join(f"{f['type']} {f['name']}" for f in COUPON_TYPE) + ")"
#: A revoked coupon id's use count (``_REVOKED``).
REVOKED = 2**32 - 1
_VERSION = 1
_WIDTHS = (32, 32, 20, 2, 12, 4, 5, 8)
_PACKED = 1 + sum(_WIDTHS) + 64


class CouponError(ValueError):
    """A coupon text that cannot be read, or a coupon that cannot be signed as given."""


@dataclass(frozen=True)
class Coupon:
    """A coupon's terms (``ICodeEscrow.Coupon``), with its signature once signed.

    Attributes:
        listing_id: The listing it is good for, or 0 for any of the signer's listings of `sku`.
        sku: The product (32 bytes) when `listing_id` is 0; zero bytes otherwise.
        buyer: The one buyer who may use it, or the zero address for anyone.
        discount_bps: Basis points off the unit price (below 10,000).
        amount_off: Token units off each code, out of the supplier's part.
        max_uses: Purchases that may use it; 0 for no limit.
        expiry: The last unix time it may be used at.
        id: The supplier's number for it (uses are counted per supplier and id).
        r: The signature's r (32 bytes), empty until signed.
        vs: The signature's s with v's parity in the top bit (EIP-2098), empty until signed.
    """

    listing_id: int
    sku: bytes
    buyer: str
    discount_bps: int
    amount_off: int
    max_uses: int
    expiry: int
    id: int
    r: bytes = b""
    vs: bytes = b""

    def message(self) -> dict[str, Any]:
        """The EIP-712 message (field names as the contract's struct)."""
        return {
            "listingId": self.listing_id,
            "sku": self.sku,
            "buyer": to_checksum_address(self.buyer),
            "discountBps": self.discount_bps,
            "amountOff": self.amount_off,
            "maxUses": self.max_uses,
            "expiry": self.expiry,
            "id": self.id,
        }

    def as_tuple(self) -> tuple[Any, ...]:
        """The coupon as the contract's `Coupon` argument."""
        return tuple(self.message().values())

    def signer(self, chain_id: int, escrow: str) -> str | None:
        """Who signed it for this escrow on this chain, or None if it carries no valid
        signature (as ``ecrecover`` gives the zero address)."""
        if len(self.r) != 32 or len(self.vs) != 32:
            return None
        vs = int.from_bytes(self.vs, "big")
        s, v = vs & (2**255 - 1), 27 + (vs >> 255)
        try:
            return str(
                Account.recover_message(
                    encode_typed_data(full_message=typed_data(self, chain_id, escrow)),
                    vrs=(v, int.from_bytes(self.r, "big"), s),
                )
            )
        except Exception:  # eth_keys refuses s or r out of range; the precompile gives 0
            return None

    def text(self) -> str:
        """The coupon as text for a share link (signed or not)."""
        fields = (
            self.listing_id,
            int.from_bytes(self.sku.rjust(32, b"\0"), "big"),
            int(self.buyer, 16),
            self.discount_bps,
            self.amount_off,
            self.max_uses,
            self.expiry,
            self.id,
        )
        body = bytes([_VERSION]) + b"".join(
            v.to_bytes(w, "big") for v, w in zip(fields, _WIDTHS, strict=True)
        )
        sig = (self.r or b"\0" * 32) + (self.vs or b"\0" * 32)
        return base64.urlsafe_b64encode(body + sig).rstrip(b"=").decode()

    @classmethod
    def from_text(cls, text: str) -> Coupon:
        """Read a coupon from its text.

        Raises:
            CouponError: the text is not a coupon of this version.
        """
        cleaned = "".join(text.split())
        try:
            raw = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (ValueError, TypeError) as exc:
            raise CouponError("not a coupon: the text is not base64url") from exc
        if len(raw) != _PACKED or raw[0] != _VERSION:
            raise CouponError(
                f"not a coupon: expected {_PACKED} bytes of version {_VERSION}, got {len(raw)}"
                + (f" of version {raw[0]}" if raw else "")
            )
        at, values = 1, []
        for w in _WIDTHS:
            values.append(int.from_bytes(raw[at : at + w], "big"))
            at += w
        listing_id, sku, buyer, bps, off, uses, expiry, cid = values
        return cls(
            listing_id=listing_id,
            sku=sku.to_bytes(32, "big"),
            buyer=to_checksum_address(buyer.to_bytes(20, "big")),
            discount_bps=bps,
            amount_off=off,
            max_uses=uses,
            expiry=expiry,
            id=cid,
            r=raw[at : at + 32],
            vs=raw[at + 32 : at + 64],
        )


def domain(chain_id: int, escrow: str) -> dict[str, Any]:
    """The EIP-712 domain of one escrow on one chain."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(escrow),
    }


def typed_data(coupon: Coupon, chain_id: int, escrow: str) -> dict[str, Any]:
    """The full EIP-712 typed data a wallet signs (``eth_signTypedData_v4``)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Coupon": COUPON_TYPE,
        },
        "primaryType": "Coupon",
        "domain": domain(chain_id, escrow),
        "message": coupon.message(),
    }


def type_hash() -> bytes:
    """``COUPON_TYPEHASH``."""
    return keccak(text=TYPE_STRING)


def check_terms(coupon: Coupon) -> None:
    """Refuse terms no purchase could use, before anything is signed.

    Raises:
        CouponError: what to fix.
    """
    if not 0 <= coupon.discount_bps < BPS:
        raise CouponError(
            f"the discount must be at least 0% and below 100%, not {coupon.discount_bps / 100:g}%"
        )
    if not 0 <= coupon.amount_off < 2**96:
        raise CouponError("the amount off must fit 96 bits")
    if coupon.discount_bps == 0 and coupon.amount_off == 0:
        raise CouponError("a coupon takes a percentage or an amount off; this one takes neither")
    if not 0 <= coupon.max_uses < 2**32:
        raise CouponError("the use limit must be below 2^32 (0 for no limit)")
    if not 0 < coupon.expiry < 2**40:
        raise CouponError("the expiry must be a unix time below 2^40")
    if not 0 <= coupon.id < 2**64:
        raise CouponError("the coupon id must fit 64 bits")
    if coupon.listing_id == 0 and not any(coupon.sku):
        raise CouponError("a coupon names its listing, or a product (sku) for all its listings")
    if coupon.listing_id < 0 or len(coupon.sku) != 32:
        raise CouponError("the listing id must be positive and the sku 32 bytes")


def sign(account: LocalAccount, coupon: Coupon, chain_id: int, escrow: str) -> Coupon:
    """The coupon signed by `account` (the listing's supplier) for this escrow and chain.

    Raises:
        CouponError: the terms could never be used (`check_terms`).
    """
    check_terms(coupon)
    signed = account.sign_message(
        encode_typed_data(full_message=typed_data(coupon, chain_id, escrow))
    )
    return with_signature(coupon, signed.signature)


def with_signature(coupon: Coupon, signature: bytes | str) -> Coupon:
    """The coupon carrying a 65-byte signature (r, s, v) in compact form.

    Raises:
        CouponError: the signature is not 65 bytes with v 27 or 28 (or 0 or 1).
    """
    sig = (
        bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
        if isinstance(signature, str)
        else bytes(signature)
    )
    if len(sig) != 65 or sig[64] not in (0, 1, 27, 28):
        raise CouponError("a signature is 65 bytes, r s v, with v 27 or 28")
    parity = sig[64] % 27
    vs = int.from_bytes(sig[32:64], "big") | (parity << 255)
    return replace(coupon, r=sig[:32], vs=vs.to_bytes(32, "big"))


def fault(
    coupon: Coupon,
    *,
    listing_id: int,
    listing_sku: bytes,
    buyer: str,
    now: int,
    used: int,
) -> str | None:
    """Why ``buyWithCoupon`` would refuse this coupon for `buyer` on this listing now, given
    its id's use count, in words (the escrow's checks but the signature), or None."""
    if now > coupon.expiry:
        return "the coupon has expired (EscrowCouponExpired)"
    if coupon.listing_id != listing_id and (coupon.listing_id != 0 or coupon.sku != listing_sku):
        return "the coupon is for another listing or product (EscrowCouponForeign)"
    if int(coupon.buyer, 16) != 0 and coupon.buyer.lower() != buyer.lower():
        return "the coupon is bound to another buyer (EscrowCouponNotYours)"
    if coupon.discount_bps >= BPS:
        return "the coupon's discount is 100% or more (EscrowBadBps)"
    if used == REVOKED:
        return "its supplier revoked the coupon (EscrowCouponUsedUp)"
    if coupon.max_uses and used >= coupon.max_uses:
        return f"the coupon has been used {used} of {coupon.max_uses} times (EscrowCouponUsedUp)"
    return None


def uses_slot_key(coupon_id: int) -> tuple[int, int]:
    """(word, bit shift) of a coupon id's use counter in ``_couponUses[supplier]``."""
    return coupon_id >> 3, (coupon_id & 7) * 32


def from_message(message: Mapping[str, Any]) -> Coupon:
    """A coupon from an EIP-712 message's fields (unsigned)."""
    sku = message["sku"]
    return Coupon(
        listing_id=int(message["listingId"]),
        sku=bytes.fromhex(sku[2:]) if isinstance(sku, str) else bytes(sku),
        buyer=to_checksum_address(message["buyer"]),
        discount_bps=int(message["discountBps"]),
        amount_off=int(message["amountOff"]),
        max_uses=int(message["maxUses"]),
        expiry=int(message["expiry"]),
        id=int(message["id"]),
    )
