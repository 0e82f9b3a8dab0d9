"""A deployed kameng world for tests and benchmarks: escrow, roles, a listing.

Kept out of the runtime packages (issue 12); `demo_codes` lives in `backend.runtime`, beside
the embedded development world.

Nothing here holds a key: every account is made fresh with a random key and funded by the
chain's faucet (see `contracts.chain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_utils import keccak

from backend.runtime import demo_codes
from contracts.client import EscrowClient, EscrowConfig, deploy_contract
from contracts.encoding import ZERO_ADDRESS, commitment, leaf, sku_id
from contracts.merkle import MerkleTree

__all__ = ["World", "commit_codes", "demo_codes", "make_world", "open_listing"]

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.chain import Chain


@dataclass
class World:
    """Accounts and a deployed escrow with an authorized supplier."""

    chain: Chain
    escrow: EscrowClient
    admin: LocalAccount
    arbiter: LocalAccount
    supplier: LocalAccount
    delivery_key: LocalAccount
    fee_recipient: LocalAccount
    buyers: list[LocalAccount] = field(default_factory=list)
    sku: bytes = b""


def make_world(chain: Chain, buyers: int = 3, config: EscrowConfig | None = None) -> World:
    """Deploy an escrow; make an admin, an arbiter, a supplier with a delivery key, buyers."""
    admin = chain.new_account()
    arbiter = chain.new_account()
    supplier = chain.new_account(ether=100_000)
    delivery_key = chain.new_account()
    fee_recipient = chain.new_account()
    escrow = EscrowClient.deploy(
        chain, admin, config or EscrowConfig(fee_recipient=fee_recipient.address)
    )
    escrow.grant_role(admin, "ARBITER_ROLE", arbiter.address)
    sku = sku_id("steam-wallet-50")
    escrow.authorize(
        admin, supplier.address, sku, keccak(text="licence: Valve distribution agreement")
    )
    escrow.name_delivery_key(supplier, delivery_key)
    return World(
        chain=chain,
        escrow=escrow,
        admin=admin,
        arbiter=arbiter,
        supplier=supplier,
        delivery_key=delivery_key,
        fee_recipient=fee_recipient,
        buyers=[chain.new_account() for _ in range(buyers)],
        sku=sku,
    )


def commit_codes(
    world: World,
    listing_id: int,
    codes: list[bytes],
    first_index: int = 0,
) -> tuple[list[bytes], MerkleTree]:
    """Commit `codes` as one batch with random salts; returns the salts and the tree."""
    import os

    salts = [os.urandom(32) for _ in codes]
    leaves = [
        leaf(first_index + i, commitment(s, c))
        for i, (s, c) in enumerate(zip(salts, codes, strict=True))
    ]
    tree = MerkleTree(leaves)
    world.escrow.commit_batch(world.supplier, listing_id, tree.root, len(codes), first_index)
    return salts, tree


def open_listing(
    world: World,
    *,
    stock: int = 10,
    unit_price: int = 10**16,
    token: str = ZERO_ADDRESS,
    bond: int = 10**18,
    delivery_window: int = 3600,
    dispute_window: int = 86_400,
    bond_bps: int = 1000,
    reseller_price: int = 0,
) -> int:
    """Bond the supplier, open a listing and commit `stock` codes to it; returns the listing id.

    A nonzero `reseller_price` opens the listing to resellers (分站) at that price a unit (the
    supplier's choice; zero leaves it closed to them): any account may then sell it in its shop
    (`EscrowClient.set_shop_price`) at a price of its own, at least this one.
    """
    listing_id, _ = world.escrow.create_listing(
        world.supplier,
        sku=world.sku,
        unit_price=unit_price,
        token=token,
        delivery_window=delivery_window,
        dispute_window=dispute_window,
        bond_bps=bond_bps,
        metadata_uri="ipfs://listing",
    )
    if reseller_price:
        world.escrow.set_reseller_price(world.supplier, listing_id, reseller_price)
    if bond:
        world.escrow.deposit_bond(world.supplier, bond, token)
    if stock:
        commit_codes(world, listing_id, demo_codes(stock))
    return listing_id


__all__ = ["World", "make_world", "open_listing", "commit_codes", "demo_codes", "deploy_contract"]
