"""Settlement: confirmation, batch settlement after the window, refunds, payouts, withdrawals."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from contracts.encoding import OrderState
from tests.contracts.helpers import (
    BPS,
    ETH,
    ETH_BOND,
    ETH_RESELLER_PRICE,
    ETH_SHOP_PRICE,
    FEE_BPS,
    USDC,
    USDC_BOND,
    USDC_RESELLER_PRICE,
    ZERO32,
    Env,
    assert_reverts,
    config,
    split,
)


def test_confirm_pays_supplier_fee_and_reseller_and_frees_bond(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    oid, order = env.delivered_order(quantity=3, reseller=env.reseller.address)
    res = escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, commission = split(order)
    # The fee is on the whole payment; the reseller keeps its margin less the fee on it, and the
    # supplier its reseller price less the fee on that.
    cut = 3 * (ETH_SHOP_PRICE - ETH_RESELLER_PRICE)
    assert fee == 3 * ETH_SHOP_PRICE * FEE_BPS // BPS
    assert commission == cut - cut * FEE_BPS // BPS
    assert to_supplier == 3 * ETH_RESELLER_PRICE - 3 * ETH_RESELLER_PRICE * FEE_BPS // BPS
    assert escrow.balance_of(supplier.address) == to_supplier
    assert escrow.balance_of(env.reseller.address) == commission
    assert escrow.call("feesOf", ETH) == fee
    assert escrow.balance_of(env.buyer.address) == 0
    assert escrow.bond_of(supplier.address) == (ETH_BOND, 0)
    assert escrow.order_hash(oid) == ZERO32
    assert res.event("OrderConfirmed").args["orderId"] == oid


def test_confirm_without_reseller_pays_no_commission(env: Env) -> None:
    oid, order = env.delivered_order(env.usdc_listing, quantity=2)
    env.escrow.confirm(env.buyer, oid, order)
    to_supplier, fee, commission = split(order)
    assert commission == 0
    assert env.escrow.balance_of(env.supplier.address, env.usdc.address) == to_supplier
    assert env.escrow.call("feesOf", env.usdc.address) == fee == 2 * 5 * USDC * FEE_BPS // BPS
    assert env.escrow.bond_of(env.supplier.address, env.usdc.address) == (USDC_BOND, 0)


def test_payout_rounds_fees_down_and_supplier_keeps_the_remainder(env: Env) -> None:
    price = 4_234_567  # 4.234567 USDC in the shop, over a reseller price of 4 USDC
    env.escrow.set_shop_price(env.reseller, env.usdc_listing, price)
    oid, order = env.delivered_order(env.usdc_listing, quantity=3, reseller=env.reseller.address)
    env.escrow.confirm(env.buyer, oid, order)
    amount, cut = 3 * price, 3 * (price - USDC_RESELLER_PRICE)
    assert (amount, cut) == (12_703_701, 703_701)
    # fee: 12,703,701 * 2% = 254,074.02 -> 254,074; the cut's share 703,701 * 2% = 14,074.02 ->
    # 14,074, so the commission is 689,627; the supplier takes the remainder.
    fee, commission = amount * 200 // BPS, cut - cut * 200 // BPS
    assert (fee, commission) == (254_074, 689_627)
    token = env.usdc.address
    assert env.escrow.balance_of(env.supplier.address, token) == amount - fee - commission
    assert amount - fee - commission == 11_760_000 == 3 * USDC_RESELLER_PRICE * 98 // 100
    assert env.escrow.balance_of(env.reseller.address, token) == commission
    assert env.escrow.call("feesOf", token) == fee


def test_order_keeps_fee_terms_of_its_listing_when_config_changes(env: Env) -> None:
    oid, order = env.delivered_order(reseller=env.reseller.address)
    env.escrow.set_config(env.admin, config(env, fee_bps=0))
    env.escrow.update_listing(env.supplier, env.eth_listing, ETH_SHOP_PRICE, True)  # fee now 0
    env.escrow.confirm(env.buyer, oid, order)
    cut = ETH_SHOP_PRICE - ETH_RESELLER_PRICE
    assert env.escrow.call("feesOf", ETH) == ETH_SHOP_PRICE * FEE_BPS // BPS
    assert env.escrow.balance_of(env.reseller.address) == cut - cut * FEE_BPS // BPS


@pytest.mark.parametrize("who", ["supplier", "outsider", "other_buyer", "arbiter"])
def test_confirm_by_anyone_but_the_buyer_reverts(env: Env, who: str) -> None:
    account: LocalAccount = {
        "supplier": env.supplier,
        "outsider": env.outsider,
        "other_buyer": env.world.buyers[1],
        "arbiter": env.arbiter,
    }[who]
    oid, order = env.delivered_order()
    assert_reverts(
        env,
        lambda: env.escrow.confirm(account, oid, order),
        "EscrowWrongCaller",
        [account.address],
        orders=[oid],
    )


def test_confirm_before_delivery_reverts_wrong_state(env: Env) -> None:
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.confirm(env.buyer, oid, order),
        "EscrowWrongState",
        [oid, OrderState.PAID],
        orders=[oid],
    )


def test_confirm_twice_reverts_unknown_order(env: Env) -> None:
    oid, order = env.delivered_order()
    env.escrow.confirm(env.buyer, oid, order)
    for stale in (order, order.with_changes(state=OrderState.COMPLETED)):
        assert_reverts(
            env,
            lambda stale=stale: env.escrow.confirm(env.buyer, oid, stale),  # type: ignore[misc]
            "EscrowUnknownOrder",
            [oid],
            orders=[oid],
        )


def test_confirm_with_tampered_order_reverts_unknown_order(env: Env) -> None:
    oid, order = env.delivered_order()
    for forged in (
        order.with_changes(amount=order.amount * 2),
        order.with_changes(fee_bps=0),
        order.with_changes(release_digest=keccak(b"other")),
        order.with_changes(buyer=env.outsider.address),
    ):
        assert_reverts(
            env,
            lambda forged=forged: env.escrow.confirm(env.buyer, oid, forged),  # type: ignore[misc]
            "EscrowUnknownOrder",
            [oid],
            orders=[oid],
            mined=False,
        )


def test_confirm_still_possible_after_the_window_until_settled(env: Env) -> None:
    oid, order = env.delivered_order()
    env.chain.travel_to(order.deadline + 100)
    env.escrow.confirm(env.buyer, oid, order)
    assert env.escrow.order_hash(oid) == ZERO32


def test_settle_batch_across_suppliers_tokens_and_resellers(env: Env) -> None:
    escrow = env.escrow
    other, sku = env.add_supplier()
    lid2, _ = escrow.create_listing(other, sku=sku, unit_price=3 * 10**15)
    escrow.commit_batch(other, lid2, keccak(b"r"), 10)
    b1, b2, b3 = env.world.buyers
    orders = [
        env.buy(buyer=b1, quantity=2),
        env.buy(buyer=b2, reseller=env.reseller.address),
        env.buy(lid2, buyer=b3, quantity=3),
        env.buy(env.usdc_listing, buyer=b1, quantity=4, reseller=env.reseller.address),
        env.buy(buyer=b3),
    ]
    delivered = [(oid, env.deliver(oid, o)) for oid, o in orders[:2]]
    (d3,), _ = escrow.deliver(other, [(orders[2][0], orders[2][1], keccak(b"d3"))])
    delivered.append((orders[2][0], d3))
    delivered += [(oid, env.deliver(oid, o)) for oid, o in orders[3:]]
    env.chain.travel_to(max(o.deadline for _, o in delivered) + 1)
    res = escrow.settle(env.outsider, delivered)
    assert [e.args["orderId"] for e in res.all("OrderSettled")] == [oid for oid, _ in delivered]
    expected: dict[tuple[str, str], int] = {}
    fees: dict[str, int] = {}
    for _, o in delivered:
        to_supplier, fee, commission = split(o)
        expected[(o.supplier, o.token)] = expected.get((o.supplier, o.token), 0) + to_supplier
        if commission:
            key = (o.reseller, o.token)
            expected[key] = expected.get(key, 0) + commission
        fees[o.token] = fees.get(o.token, 0) + fee
    assert (env.reseller.address, env.usdc.address) in expected
    for (account, token), amount in expected.items():
        assert escrow.balance_of(account, token) == amount
    for token, amount in fees.items():
        assert escrow.call("feesOf", token) == amount
    assert escrow.bond_of(env.supplier.address) == (ETH_BOND, 0)
    assert escrow.bond_of(env.supplier.address, env.usdc.address) == (USDC_BOND, 0)
    assert escrow.bond_of(other.address) == (ETH_BOND, 0)
    assert all(escrow.order_hash(oid) == ZERO32 for oid, _ in delivered)


def test_settle_reverts_for_undelivered_or_disputed_orders(env: Env) -> None:
    paid = env.buy()
    disputed = env.disputed_order(buyer=env.world.buyers[1])
    env.chain.travel_to(max(paid[1].deadline, disputed[1].deadline) + 1)
    for oid, order in (paid, disputed):
        assert_reverts(
            env,
            lambda oid=oid, order=order: env.escrow.settle(env.outsider, [(oid, order)]),  # type: ignore[misc]
            "EscrowWrongState",
            [oid, order.state],
            orders=[oid],
        )


def test_settle_bad_arrays_and_twice_revert(env: Env) -> None:
    oid, order = env.delivered_order()
    env.chain.travel_to(order.deadline + 1)
    fn = env.escrow.contract.functions.settle
    assert_reverts(
        env,
        lambda: env.tx.send(env.outsider, fn([], [])),
        "EscrowBadArgument",
        ["orderIds"],
    )
    assert_reverts(
        env,
        lambda: env.tx.send(env.outsider, fn([oid, oid], [order.as_tuple()])),
        "EscrowLengthMismatch",
        [],
        orders=[oid],
    )
    # The same order twice in a batch: settled once, then skipped (audit finding 6).
    res = env.escrow.settle(env.outsider, [(oid, order), (oid, order)])
    assert [e.args["orderId"] for e in res.all("OrderSettled")] == [oid]
    assert [e.args["orderId"] for e in res.all("SettlementSkipped")] == [oid]
    assert_reverts(
        env,
        lambda: env.escrow.settle(env.outsider, [(oid, order)]),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )


def test_refund_after_missed_deadline_returns_everything_to_buyer(env: Env) -> None:
    escrow = env.escrow
    oid, order = env.buy(quantity=2, reseller=env.reseller.address)
    assert order.reseller_cut > 0
    env.chain.travel_to(order.deadline + 1)
    res = escrow.refund(env.outsider, oid, order)  # anyone may trigger it; the buyer is credited
    ev = res.event("OrderRefunded").args
    assert (ev["orderId"], ev["amount"]) == (oid, 2 * ETH_SHOP_PRICE)
    assert escrow.balance_of(env.buyer.address) == 2 * ETH_SHOP_PRICE
    assert escrow.balance_of(env.reseller.address) == 0
    assert escrow.balance_of(env.supplier.address) == 0
    assert escrow.call("feesOf", ETH) == 0
    assert escrow.bond_of(env.supplier.address) == (ETH_BOND, 0)
    assert escrow.order_hash(oid) == ZERO32


def test_refund_of_delivered_order_reverts_and_refund_twice_reverts(env: Env) -> None:
    oid, order = env.delivered_order()
    oid2, order2 = env.buy(buyer=env.world.buyers[1])
    env.chain.travel_to(max(order.deadline, order2.deadline) + 1)
    assert_reverts(
        env,
        lambda: env.escrow.refund(env.buyer, oid, order),
        "EscrowWrongState",
        [oid, OrderState.DELIVERED],
        orders=[oid],
    )
    env.escrow.refund(env.world.buyers[1], oid2, order2)
    assert_reverts(
        env,
        lambda: env.escrow.refund(env.world.buyers[1], oid2, order2),
        "EscrowUnknownOrder",
        [oid2],
        orders=[oid2],
    )


def test_withdraw_pays_out_the_whole_balance_once(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    oid, order = env.delivered_order(quantity=5)
    escrow.confirm(env.buyer, oid, order)
    owed = escrow.balance_of(supplier.address)
    before = env.held(ETH, env.outsider.address)
    res = escrow.withdraw(supplier, to=env.outsider.address)
    ev = res.event("Withdrawn").args
    assert (ev["amount"], ev["to"].lower()) == (owed, env.outsider.address.lower())
    assert env.held(ETH, env.outsider.address) == before + owed
    assert escrow.balance_of(supplier.address) == 0
    assert_reverts(
        env,
        lambda: escrow.withdraw(supplier),
        "EscrowNothingToWithdraw",
        [supplier.address, ETH],
    )


def test_withdraw_usdc_balance(env: Env) -> None:
    token = env.usdc.address
    oid, order = env.delivered_order(env.usdc_listing, quantity=2)
    env.escrow.confirm(env.buyer, oid, order)
    owed = env.escrow.balance_of(env.supplier.address, token)
    before = env.held(token, env.supplier.address)
    env.escrow.withdraw(env.supplier, token)
    assert env.held(token, env.supplier.address) == before + owed
    assert env.held(token) == USDC_BOND + env.escrow.call("feesOf", token)


def test_withdraw_to_zero_address_reverts(env: Env) -> None:
    call = env.escrow.contract.functions.withdraw(ETH, ETH)
    assert_reverts(env, lambda: env.tx.send(env.buyer, call), "EscrowBadArgument", ["to"])


def test_withdraw_to_a_contract_that_refuses_ether_reverts_transfer_failed(env: Env) -> None:
    oid, order = env.delivered_order()
    env.escrow.confirm(env.buyer, oid, order)
    owed = env.escrow.balance_of(env.supplier.address)
    refuser = env.usdc.address  # an ERC-20 has no receive function
    assert_reverts(
        env,
        lambda: env.escrow.withdraw(env.supplier, to=refuser),
        "EscrowTransferFailed",
        [refuser, owed],
        orders=[oid],
    )
