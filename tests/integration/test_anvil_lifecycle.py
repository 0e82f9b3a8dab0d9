"""Smoke test: the whole escrow lifecycle on a real node (anvil), with EVM time travel."""

from __future__ import annotations

import pytest
from eth_typing import HexStr
from eth_utils import keccak

from bench.world import make_world, open_listing
from contracts.chain import Chain
from contracts.encoding import ZERO_ADDRESS, OrderState
from contracts.errors import ContractRevertError

pytestmark = pytest.mark.anvil

PRICE = 10**16
#: The listing is open to resellers at 0.008 a code; the reseller's shop sells it at 0.011.
RESELLER_PRICE = 8 * 10**15
SHOP_PRICE = 11 * 10**15
BOND = 10**18
PUBKEY = keccak(b"buyer key")


def test_whole_lifecycle_on_anvil(anvil: Chain) -> None:
    world = make_world(anvil, buyers=3)
    escrow, supplier = world.escrow, world.supplier
    b1, b2, b3 = world.buyers
    reseller = anvil.new_account()

    # Bond, listing (open to resellers, in the reseller's shop) and a batch of ten codes.
    lid = open_listing(world, stock=10, unit_price=PRICE, bond=BOND, reseller_price=RESELLER_PRICE)
    escrow.set_shop_price(reseller, lid, SHOP_PRICE)
    assert escrow.bond_of(supplier.address) == (BOND, 0)
    assert escrow.batch(lid, 0)[1:] == (0, 10)

    # Four orders, the first in the reseller's shop; the bond reservation follows them.
    buy = escrow.buy
    oid1, o1, _ = buy(
        b1, lid, 2, max_unit_price=SHOP_PRICE, buyer_pubkey=PUBKEY, reseller=reseller.address
    )
    assert (o1.amount, o1.reseller_cut) == (2 * SHOP_PRICE, 2 * (SHOP_PRICE - RESELLER_PRICE))
    oid2, o2, _ = buy(b2, lid, 1, max_unit_price=PRICE, buyer_pubkey=PUBKEY)
    oid3, o3, _ = buy(b3, lid, 1, max_unit_price=PRICE, buyer_pubkey=PUBKEY)
    oid4, o4, _ = buy(b1, lid, 3, max_unit_price=PRICE, buyer_pubkey=PUBKEY)
    reserved = o1.bond + o2.bond + o3.bond + o4.bond
    assert escrow.bond_of(supplier.address) == (BOND - reserved, reserved)
    assert [oid & 0xFFFFFFFF for oid in (oid1, oid2, oid3, oid4)] == [0, 2, 3, 4]

    # Delivery of three of them in one transaction by the delivery key.
    delivered, _ = escrow.deliver(
        world.delivery_key,
        [(oid1, o1, keccak(b"r1")), (oid2, o2, keccak(b"r2")), (oid4, o4, keccak(b"r4"))],
    )
    d1, d2, d4 = delivered
    assert all(escrow.order_matches(o, d) for o, d in ((oid1, d1), (oid2, d2), (oid4, d4)))

    # Buyer 1 confirms its first order; it disputes the other one and the arbiter rules.
    escrow.confirm(b1, oid1, d1)
    disputed, _ = escrow.dispute(b1, oid4, d4, "ipfs://claim", keccak(b"claim"))
    assert disputed.state == OrderState.DISPUTED
    escrow.add_evidence(supplier, oid4, disputed, "ipfs://reply", keccak(b"reply"))
    escrow.rule(world.arbiter, oid4, disputed, buyer_bps=10_000, slash_bps=5_000)
    slashed = o4.bond // 2

    # Settling before the dispute window ends is refused; after time travel it goes through.
    with pytest.raises(ContractRevertError) as early:
        escrow.settle(world.fee_recipient, [(oid2, d2)])
    assert early.value.name == "EscrowDeadlineNotReached"
    anvil.travel_to(d2.deadline + 1)
    escrow.settle(world.fee_recipient, [(oid2, d2)])
    # Order 3 was never delivered and its deadline has long passed: the buyer takes it back.
    escrow.refund(b3, oid3, o3)

    fee = (o1.amount + o2.amount) * 200 // 10_000
    # The reseller's cut less its 2% share of the fee; the supplier the rest.
    commission = o1.reseller_cut - o1.reseller_cut * 200 // 10_000
    assert escrow.balance_of(supplier.address) == o1.amount + o2.amount - fee - commission
    assert escrow.balance_of(supplier.address) == (2 * RESELLER_PRICE + PRICE) * 98 // 100
    assert escrow.balance_of(reseller.address) == commission
    assert escrow.balance_of(b1.address) == o4.amount + slashed
    assert escrow.balance_of(b3.address) == o3.amount
    assert escrow.call("feesOf", ZERO_ADDRESS) == fee
    assert escrow.bond_of(supplier.address) == (BOND - slashed, 0)
    assert all(escrow.order_hash(o) == b"\0" * 32 for o in (oid1, oid2, oid3, oid4))

    # Everyone withdraws; the escrow keeps only the fees and the supplier's free bond.
    for account in (supplier, reseller, b1, b3):
        before = anvil.w3.eth.get_balance(account.address)
        owed = escrow.balance_of(account.address)
        receipt = escrow.withdraw(account)
        tx = anvil.w3.eth.get_transaction_receipt(HexStr(receipt.tx_hash))
        gas_cost = tx["gasUsed"] * tx["effectiveGasPrice"]
        assert anvil.w3.eth.get_balance(account.address) == before + owed - gas_cost
        assert escrow.balance_of(account.address) == 0
    assert anvil.w3.eth.get_balance(escrow.address) == fee + BOND - slashed
