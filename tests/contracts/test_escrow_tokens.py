"""ERC-20 payment: a 6-decimal stablecoin, a fee-on-transfer token, and a blocklisting token."""

from __future__ import annotations

from eth_utils import keccak

from tests.contracts.helpers import (
    PUBKEY,
    USDC,
    USDC_BOND,
    USDC_PRICE,
    USDC_RESELLER_PRICE,
    USDC_SHOP_PRICE,
    Env,
    assert_reverts,
)


def test_usdc_has_six_decimals_and_a_full_lifecycle_moves_exact_units(env: Env) -> None:
    usdc, escrow, token = env.usdc, env.escrow, env.usdc.address
    assert usdc.functions.decimals().call() == 6
    buyer = env.buyer
    wallet_before = env.held(token, buyer.address)
    # Bought in the reseller's shop: 7 codes at 4.5 USDC, 31.5 USDC.
    oid, order = env.buy(env.usdc_listing, quantity=7, reseller=env.reseller.address)
    assert 7 * USDC_SHOP_PRICE == 31_500_000
    assert order.amount == 31_500_000 and order.token == token
    assert order.reseller_cut == 7 * (USDC_SHOP_PRICE - USDC_RESELLER_PRICE) == 3_500_000
    assert env.held(token, buyer.address) == wallet_before - 31_500_000
    assert env.held(token) == USDC_BOND + 31_500_000
    delivered = env.deliver(oid, order)
    escrow.confirm(buyer, oid, delivered)
    # fee 2% of 31.5 USDC; commission the 3.5 USDC cut less its 2%; the supplier 28 USDC less 2%.
    fee, commission = 31_500_000 * 200 // 10_000, 3_500_000 - 3_500_000 * 200 // 10_000
    assert (fee, commission) == (630_000, 3_430_000)
    assert 31_500_000 - fee - commission == 27_440_000 == 28 * USDC * 98 // 100
    supplier_wallet = env.held(token, env.supplier.address)
    escrow.withdraw(env.supplier, token)
    escrow.withdraw(env.reseller, token)
    escrow.withdraw_bond(env.supplier, USDC_BOND, token=token)
    env.withdraw_fees(token, env.world.fee_recipient.address)
    assert env.held(token, env.supplier.address) == supplier_wallet + 27_440_000 + USDC_BOND
    assert env.held(token, env.reseller.address) == commission
    assert env.held(token, env.world.fee_recipient.address) == fee
    assert env.held(token) == 0


def test_fee_on_transfer_token_is_refused_for_bond_and_for_payment(env: Env) -> None:
    fot = env.deploy_token("FeeOnTransferToken")
    env.fund_token(fot, [env.supplier, env.buyer], 10**12)
    # The bond deposit: 1% of 10,000 units is burnt in transit.
    assert_reverts(
        env,
        lambda: env.escrow.deposit_bond(env.supplier, 10_000, fot),
        "EscrowTokenShortfall",
        [fot, 10_000, 9_900],
    )
    # Below 100 units the token burns nothing, so a small bond goes through ...
    env.escrow.deposit_bond(env.supplier, 99, fot)
    assert env.escrow.bond_of(env.supplier.address, fot) == (99, 0)
    lid, _ = env.escrow.create_listing(
        env.supplier, sku=env.world.sku, unit_price=100, token=fot, bond_bps=1000
    )
    env.escrow.commit_batch(env.supplier, lid, keccak(b"fot"), 5)
    # ... but a payment of 200 units loses 2 and is refused.
    assert_reverts(
        env,
        lambda: env.escrow.buy(env.buyer, lid, 2, max_unit_price=100, buyer_pubkey=PUBKEY, value=0),
        "EscrowTokenShortfall",
        [fot, 200, 198],
    )
    assert env.escrow.call("getListing", lid)[2] == 0  # nothing sold


def test_blocked_supplier_cannot_freeze_anyone_elses_funds(env: Env) -> None:
    escrow = env.escrow
    blk = env.deploy_token("BlocklistToken")
    token = env.token(blk)
    supplier, b1, b2 = env.supplier, env.world.buyers[0], env.world.buyers[1]
    env.fund_token(blk, [supplier, b1, b2], 10**12)
    escrow.deposit_bond(supplier, 1_000 * USDC, blk)
    lid, _ = escrow.create_listing(supplier, sku=env.world.sku, unit_price=USDC_PRICE, token=blk)
    escrow.set_reseller_price(supplier, lid, USDC_RESELLER_PRICE)
    escrow.set_shop_price(env.reseller, lid, USDC_SHOP_PRICE)
    escrow.commit_batch(supplier, lid, keccak(b"blk"), 10)
    sold, sold_order = env.buy(lid, buyer=b1, quantity=2, reseller=env.reseller.address)
    sold_order = env.deliver(sold, sold_order)
    escrow.confirm(b1, sold, sold_order)
    unsent, unsent_order = env.buy(lid, buyer=b2)
    env.chain.travel_to(unsent_order.deadline + 1)
    escrow.refund(b2, unsent, unsent_order)

    env.send(env.admin, token.functions.setBlocked(supplier.address, True))
    owed = escrow.balance_of(supplier.address, blk)
    assert owed > 0
    # The blocked supplier cannot receive: its own withdrawals revert and change nothing.
    assert_reverts(env, lambda: escrow.withdraw(supplier, blk), "Blocked", [supplier.address])
    assert_reverts(
        env,
        lambda: escrow.withdraw_bond(supplier, 10 * USDC, token=blk),
        "Blocked",
        [supplier.address],
    )
    # Everyone else is paid: the refunded buyer, the reseller, the platform.
    for account in (b2, env.reseller):
        before = env.held(blk, account.address)
        credit = escrow.balance_of(account.address, blk)
        escrow.withdraw(account, blk)
        assert env.held(blk, account.address) == before + credit
    assert credit > 0
    fees = escrow.call("feesOf", blk)
    env.withdraw_fees(blk, env.world.fee_recipient.address)
    assert env.held(blk, env.world.fee_recipient.address) == fees
    # New orders and refunds go on while the supplier is blocked.
    later, later_order = env.buy(lid, buyer=b1)
    env.chain.travel_to(later_order.deadline + 1)
    escrow.refund(b1, later, later_order)
    escrow.withdraw(b1, blk)
    # And the supplier itself can take its money to an address that is not blocked.
    escrow.withdraw(supplier, blk, to=env.outsider.address)
    assert env.held(blk, env.outsider.address) == owed
    escrow.withdraw_bond(supplier, 10 * USDC, to=env.outsider.address, token=blk)
    assert env.held(blk, env.outsider.address) == owed + 10 * USDC
    assert escrow.balance_of(supplier.address, blk) == 0


def test_blocked_buyer_cannot_freeze_the_supplier(env: Env) -> None:
    escrow = env.escrow
    blk = env.deploy_token("BlocklistToken")
    token = env.token(blk)
    supplier, buyer = env.supplier, env.buyer
    env.fund_token(blk, [supplier, buyer], 10**12)
    escrow.deposit_bond(supplier, 1_000 * USDC, blk)
    lid, _ = escrow.create_listing(supplier, sku=env.world.sku, unit_price=USDC_PRICE, token=blk)
    escrow.set_reseller_price(supplier, lid, USDC_RESELLER_PRICE)
    escrow.set_shop_price(env.reseller, lid, USDC_SHOP_PRICE)
    escrow.commit_batch(supplier, lid, keccak(b"blk"), 10)
    oid, order = env.buy(lid, buyer=buyer)
    order = env.deliver(oid, order)
    oid2, order2 = env.disputed_order(lid, buyer=buyer, reseller=env.reseller.address)
    for blocked in (buyer, env.reseller):
        env.send(env.admin, token.functions.setBlocked(blocked.address, True))
    env.chain.travel_to(max(order.deadline, order2.deadline) + 1)
    # Settlement and rulings are credits, never pushes: a blocked buyer or reseller stops neither.
    escrow.settle(env.outsider, [(oid, order)])
    escrow.rule(env.arbiter, oid2, order2, buyer_bps=5_000, slash_bps=5_000)
    before = env.held(blk, supplier.address)
    credit = escrow.balance_of(supplier.address, blk)
    escrow.withdraw(supplier, blk)
    assert env.held(blk, supplier.address) == before + credit
    # The buyer's own share waits for it, withdrawable to an unblocked address.
    share = escrow.balance_of(buyer.address, blk)
    assert share > 0
    assert_reverts(env, lambda: escrow.withdraw(buyer, blk), "Blocked", [buyer.address])
    escrow.withdraw(buyer, blk, to=env.outsider.address)
    assert env.held(blk, env.outsider.address) == share
    # So does the reseller's commission on the half of the payment the ruling left the sellers.
    commission = escrow.balance_of(env.reseller.address, blk)
    assert commission > 0
    assert_reverts(
        env, lambda: escrow.withdraw(env.reseller, blk), "Blocked", [env.reseller.address]
    )
    escrow.withdraw(env.reseller, blk, to=env.outsider.address)
    assert env.held(blk, env.outsider.address) == share + commission
