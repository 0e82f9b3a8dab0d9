"""Per-order buyer keys, derived from a wallet signature so a buyer can always recover them.

The buyer signs (EIP-191 ``personal_sign``) a message naming the chain, the escrow, the buyer
and a per-order nonce: the account nonce of the buy transaction. That nonce is on-chain for
ever (it is the nonce of the transaction that emitted OrderPaid), so a buyer who keeps the
wallet can re-derive the key of any past order::

    seed = keccak256(signature)         signature = r || s || v, with v in {27, 28}
    key  = X25519 private key with seed as its 32 secret bytes (libsodium clamps it)

ECDSA signatures by Ethereum wallets are deterministic (RFC 6979), so the same message always
gives the same key. Public API: `order_key_message`, `order_key_from_signature`,
`derive_order_key`, `next_order_key`, `recover_order_key`, `public_key_bytes`.
Specified in docs/RELEASE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address
from nacl.public import PrivateKey

from backend.errors import KeyDerivationError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.client import EscrowClient

MESSAGE_TEMPLATE = (
    "kameng: unlock the codes of one order\n"
    "\n"
    "Signing this creates the key that receives this order's codes. Sign it only on kameng:\n"
    "anyone holding this signature can read the order's codes.\n"
    "\n"
    "Chain ID: {chain_id}\n"
    "Escrow: {escrow}\n"
    "Buyer: {buyer}\n"
    "Order nonce: {nonce}"
)


def order_key_message(*, chain_id: int, escrow: str, buyer: str, nonce: int) -> str:
    """The text the buyer's wallet signs for one order."""
    return MESSAGE_TEMPLATE.format(
        chain_id=chain_id,
        escrow=to_checksum_address(escrow),
        buyer=to_checksum_address(buyer),
        nonce=nonce,
    )


def order_key_from_signature(signature: bytes) -> PrivateKey:
    """The X25519 key of an order from the wallet's 65-byte signature of its message.

    ``v`` is normalized to 27/28, since some wallets return 0/1.

    Raises:
        KeyDerivationError: the signature is not 65 bytes.
    """
    if len(signature) != 65:
        raise KeyDerivationError(f"expected a 65-byte signature, got {len(signature)} bytes")
    v = signature[64]
    if v < 27:
        signature = signature[:64] + bytes([v + 27])
    return PrivateKey(keccak(signature))


def derive_order_key(
    account: LocalAccount, *, chain_id: int, escrow: str, nonce: int
) -> PrivateKey:
    """Derive an order key with a local account (the CLI's and tests' wallet)."""
    message = order_key_message(
        chain_id=chain_id, escrow=escrow, buyer=account.address, nonce=nonce
    )
    signed = account.sign_message(encode_defunct(text=message))
    return order_key_from_signature(bytes(signed.signature))


def public_key_bytes(key: PrivateKey) -> bytes:
    """The 32-byte public key that goes into `buy` as ``buyerPubKey``."""
    return bytes(key.public_key)


def next_order_key(escrow: EscrowClient, account: LocalAccount) -> tuple[PrivateKey, int]:
    """The key for the account's next transaction, meant to be the buy.

    Returns:
        (key, nonce): send the buy with exactly this nonce, or the key will not be recoverable
        from the chain (a later `recover_order_key` will say so).
    """
    nonce = int(escrow.w3.eth.get_transaction_count(account.address, "pending"))
    key = derive_order_key(
        account, chain_id=escrow.chain.chain_id, escrow=escrow.address, nonce=nonce
    )
    return key, nonce


def recover_order_key(
    escrow: EscrowClient, account: LocalAccount, order_id: int, from_block: int = 0
) -> PrivateKey:
    """Re-derive the key of a past order from the chain: find its OrderPaid, read the nonce of
    the transaction that emitted it, sign again.

    Raises:
        KeyDerivationError: the order is unknown, not the account's, or was bought with a key
            derived for another nonce.
    """
    codec = escrow.codec
    logs = escrow.logs(
        from_block,
        "latest",
        [
            "0x" + codec.topic("OrderPaid").hex(),
            "0x" + order_id.to_bytes(32, "big").hex(),
        ],
    )
    events = [e for e in (codec.decode_log(raw) for raw in logs) if e is not None]
    if not events:
        raise KeyDerivationError(f"order {order_id} has no OrderPaid event on {escrow.address}")
    paid = events[0]
    if to_checksum_address(paid.args["buyer"]) != account.address:
        raise KeyDerivationError(f"order {order_id} was bought by another account")
    tx = escrow.w3.eth.get_transaction(paid.tx_hash)  # type: ignore[arg-type]
    key = derive_order_key(
        account, chain_id=escrow.chain.chain_id, escrow=escrow.address, nonce=int(tx["nonce"])
    )
    if public_key_bytes(key) != bytes(paid.args["buyerPubKey"]):
        raise KeyDerivationError(
            f"order {order_id} was paid with a key not derived from nonce {tx['nonce']}; it was "
            "made another way (or for another nonce), so only the original key opens it"
        )
    return key
