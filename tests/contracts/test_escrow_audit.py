"""Regression tests for the 2026-12 audit of CodeEscrow: each runs the finding's exploit and shows
that it now fails (the finding is named in each test's docstring). Finding 9 is tested in
test_prove_bad_code.py; finding 10 (a release served before its delivery is mined) in
tests/backend/test_api_buyer.py."""

from __future__ import annotations

from eth_utils import keccak

from contracts.encoding import OrderState
from tests.contracts.helpers import (
    BPS,
    ETH_PRICE,
    FEE_BPS,
    PUBKEY,
    USDC,
    Env,
    assert_reverts,
    config,
    next_tx_at,
    split,
)

HOUR = 3600
DAY = 86_400
MAX80 = 2**80 - 1
MAX96 = 2**96 - 1


# ---------------------------------------------------------------- finding 1


def test_supplier_cannot_make_an_arbiter_its_delivery_key(env: Env) -> None:
    """Audit finding 1 (high): a supplier named each arbiter as its own delivery key, so every
    ruling on its orders reverted EscrowArbiterIsParty and disputes timed out 50/50. A proposed
    key is now inert until it accepts, and an arbiter cannot accept."""
    escrow, arbiter, supplier = env.escrow, env.world.arbiter, env.supplier
    oid, order = env.disputed_order()
    res = escrow.set_delivery_key(supplier, arbiter.address)
    assert [e.name for e in res.events] == ["DeliveryKeyProposed"]
    assert escrow.call("isDeliveryKey", supplier.address, arbiter.address) is False
    assert escrow.call("isProposedDeliveryKey", supplier.address, arbiter.address) is True
    # The proposal alone does not make the arbiter a party: it rules.
    ruled = escrow.rule(arbiter, oid, order, buyer_bps=10_000, slash_bps=10_000)
    assert ruled.event("DisputeRuled").args["arbiter"].lower() == arbiter.address.lower()
    # And the arbiter cannot take the role while it holds ARBITER_ROLE.
    assert_reverts(
        env,
        lambda: escrow.accept_delivery_key(arbiter, supplier.address),
        "EscrowKeyIsArbiter",
        [arbiter.address],
    )


def test_a_newly_appointed_arbiter_cannot_be_captured_either(env: Env) -> None:
    """Audit finding 1: the supplier front-ran each new appointment. A proposal made before the
    appointment stays inert, and the new arbiter rules."""
    escrow, supplier = env.escrow, env.supplier
    newcomer = env.chain.new_account(ether=1)
    escrow.set_delivery_key(supplier, newcomer.address)
    escrow.grant_role(env.admin, "ARBITER_ROLE", newcomer.address)
    oid, order = env.disputed_order()
    escrow.rule(newcomer, oid, order, buyer_bps=5_000)
    assert escrow.order_hash(oid) == b"\0" * 32


def test_a_delivery_key_acts_only_after_accepting_and_can_resign(env: Env) -> None:
    """Audit finding 1: the two steps, and the key's own way out."""
    escrow, supplier = env.escrow, env.supplier
    key = env.chain.new_account(ether=1)
    oid, order = env.buy()
    escrow.set_delivery_key(supplier, key.address)
    assert_reverts(
        env,
        lambda: escrow.deliver(key, [(oid, order, keccak(b"d"))]),
        "EscrowWrongCaller",
        [key.address],
        orders=[oid],
    )
    assert_reverts(
        env,
        lambda: escrow.accept_delivery_key(env.outsider, supplier.address),
        "EscrowNotProposed",
        [supplier.address, env.outsider.address],
    )
    res = escrow.accept_delivery_key(key, supplier.address)
    ev = res.event("DeliveryKeySet").args
    assert (ev["supplier"].lower(), ev["key"].lower(), ev["enabled"]) == (
        supplier.address.lower(),
        key.address.lower(),
        True,
    )
    (delivered,), _ = escrow.deliver(key, [(oid, order, keccak(b"d"))])
    assert delivered.state == OrderState.DELIVERED
    res = escrow.resign_delivery_key(key, supplier.address)
    assert res.event("DeliveryKeySet").args["enabled"] is False
    assert escrow.call("isDeliveryKey", supplier.address, key.address) is False
    # A key that accepted and then became an arbiter is a party by its own act; resigning
    # ends that.
    escrow.set_delivery_key(supplier, key.address)
    escrow.accept_delivery_key(key, supplier.address)
    escrow.grant_role(env.admin, "ARBITER_ROLE", key.address)
    doid, dorder = env.disputed_order()
    assert_reverts(
        env,
        lambda: escrow.rule(key, doid, dorder, buyer_bps=0),
        "EscrowArbiterIsParty",
        [key.address],
        orders=[doid],
    )
    escrow.resign_delivery_key(key, supplier.address)
    escrow.rule(key, doid, dorder, buyer_bps=0)


# ---------------------------------------------------------------- finding 2


def test_buyer_cannot_name_an_arbiter_as_reseller(env: Env) -> None:
    """Audit finding 2 (medium): a buyer named the arbiter as referrer to block its ruling, then
    disputed a good code in bad faith and collected half by timeout. Referrers gave way to
    resellers: a buyer can only buy from a shop its owner opened, so it cannot make an arbiter a
    party to its order; an arbiter that opens a shop itself is a party to that shop's orders
    only, and another arbiter rules on them."""
    escrow, arbiter, lid = env.escrow, env.world.arbiter, env.eth_listing
    assert_reverts(
        env,
        lambda: env.buy(reseller=arbiter.address),
        "EscrowNotInShop",
        [arbiter.address, lid],
    )
    # The admin also holds ARBITER_ROLE in this deployment.
    assert_reverts(
        env,
        lambda: env.buy(reseller=env.admin.address),
        "EscrowNotInShop",
        [env.admin.address, lid],
    )
    # An arbiter that keeps a shop by its own choice cannot rule on what it sold ...
    escrow.set_shop_price(arbiter, lid, ETH_PRICE)
    oid, order = env.disputed_order(reseller=arbiter.address)
    assert_reverts(
        env,
        lambda: escrow.rule(arbiter, oid, order, buyer_bps=0),
        "EscrowArbiterIsParty",
        [arbiter.address],
        orders=[oid],
    )
    # ... another arbiter can, and it still rules on everyone else's orders.
    escrow.rule(env.admin, oid, order, buyer_bps=0)
    other_oid, other = env.disputed_order(buyer=env.world.buyers[1])
    escrow.rule(arbiter, other_oid, other, buyer_bps=0)
    assert escrow.order_hash(oid) == escrow.order_hash(other_oid) == b"\0" * 32


# ---------------------------------------------------------------- finding 3


def test_supplier_cannot_freeze_refunds_by_topping_up_its_bond(env: Env) -> None:
    """Audit finding 3 (medium): a supplier topped its free bond up to 2^80 - 1 so that every
    returned reservation overflowed and refund, confirm, settle, resolveTimedOut and partial
    rulings reverted. Free + reserved is now capped at deposit, so the top-up is refused and the
    refund goes through."""
    escrow, supplier, token = env.escrow, env.supplier, env.usdc.address
    oid, order = env.buy(env.usdc_listing)
    free, reserved = escrow.bond_of(supplier.address, token)
    assert reserved == order.bond > 0
    top_up = MAX80 - free
    env.send(env.supplier, env.usdc.functions.mint(supplier.address, top_up))
    assert_reverts(
        env,
        lambda: escrow.deposit_bond(supplier, top_up, token),
        "EscrowAmountTooLarge",
        [free + reserved + top_up, MAX80],
        orders=[oid],
    )
    # Up to the cap is fine; the refund still goes through.
    escrow.deposit_bond(supplier, MAX80 - free - reserved, token)
    assert sum(escrow.bond_of(supplier.address, token)) == MAX80
    next_tx_at(env.chain, order.deadline + 1)
    escrow.refund(env.buyer, oid, order)
    assert escrow.bond_of(supplier.address, token) == (MAX80, 0)
    assert escrow.balance_of(env.buyer.address, token) >= order.amount


# ---------------------------------------------------------------- finding 4


def test_a_one_second_dispute_window_is_refused(env: Env) -> None:
    """Audit finding 4 (medium): a listing with disputeWindow = 1 let a supplier deliver garbage
    and settle before any buyer could dispute. Windows are bounded by the configuration."""
    assert_reverts(
        env,
        lambda: env.escrow.create_listing(
            env.supplier, sku=env.world.sku, unit_price=1, dispute_window=1
        ),
        "EscrowBadWindow",
        ["disputeWindow", 1, HOUR, 90 * DAY],
    )
    # The configured minimum can itself never go below the contract's floor of one hour.
    assert_reverts(
        env,
        lambda: env.escrow.set_config(env.admin, config(env, min_dispute_window=1)),
        "EscrowBadWindow",
        ["minDisputeWindow", 1, HOUR, 365 * DAY],
    )


# ---------------------------------------------------------------- finding 5


def test_arbitration_window_is_fixed_for_orders_already_placed(env: Env) -> None:
    """Audit finding 5 (low): the admin could set the arbitration window to about 136 years and
    it applied to orders already delivered. It is now bounded (at most 90 days) and fixed per
    listing at creation, so an order's arbitration deadline never moves after it is placed."""
    escrow = env.escrow
    oid, order = env.delivered_order()
    assert_reverts(
        env,
        lambda: escrow.set_config(env.admin, config(env, arbitration_window=2**32 - 1)),
        "EscrowBadWindow",
        ["arbitrationWindow", 2**32 - 1, HOUR, 90 * DAY],
    )
    escrow.set_config(env.admin, config(env, arbitration_window=90 * DAY))
    disputed = env.dispute(oid, order)
    opened_at = escrow.block_timestamp(env.chain.w3.eth.block_number)
    assert disputed.deadline == opened_at + 7 * DAY  # the listing's window, not the new one
    # A listing created after the change takes the new window.
    lid, _ = escrow.create_listing(env.supplier, sku=env.world.sku, unit_price=ETH_PRICE)
    assert escrow.listing(lid)["arbitration_window"] == 90 * DAY


# ---------------------------------------------------------------- finding 6


def test_front_running_one_settlement_does_not_revert_the_batch(env: Env) -> None:
    """Audit finding 6 (low): anyone could make a keeper's settle batch revert by settling one of
    its orders first. Finished orders are now skipped and reported."""
    escrow = env.escrow
    items = [env.delivered_order() for _ in range(3)]
    next_tx_at(env.chain, max(o.deadline for _, o in items) + 1)
    griefed = items[1]
    escrow.settle(env.outsider, [griefed])
    res = escrow.settle(env.outsider, items)
    assert [e.args["orderId"] for e in res.all("OrderSettled")] == [items[0][0], items[2][0]]
    assert [e.args["orderId"] for e in res.all("SettlementSkipped")] == [griefed[0]]
    for oid, _ in items:
        assert escrow.order_hash(oid) == b"\0" * 32
    # A batch with nothing left to settle tells the caller, as a single finished order does.
    assert_reverts(
        env,
        lambda: escrow.settle(env.outsider, items[:1]),
        "EscrowUnknownOrder",
        [items[0][0]],
    )


def test_a_refund_racing_a_delivery_batch_does_not_revert_it(env: Env) -> None:
    """Audit finding 6: the same for deliver: an order refunded before the batch lands is
    skipped, the rest are delivered."""
    escrow = env.escrow
    late_oid, late = env.buy()
    next_tx_at(env.chain, late.deadline + 1)
    escrow.refund(env.buyer, late_oid, late)
    fresh_oid, fresh = env.buy()
    delivered, res = escrow.deliver(
        env.supplier, [(late_oid, late, keccak(b"a")), (fresh_oid, fresh, keccak(b"b"))]
    )
    assert [e.args["orderId"] for e in res.all("DeliverySkipped")] == [late_oid]
    assert [e.args["orderId"] for e in res.all("OrderDelivered")] == [fresh_oid]
    assert escrow.order_matches(fresh_oid, delivered[-1])


# ---------------------------------------------------------------- finding 7


def test_a_full_reseller_balance_does_not_block_anyone_elses_payout(env: Env) -> None:
    """Audit finding 7 (low): a referrer (now a reseller) whose 96-bit balance was nearly full
    made every payout of an order naming it revert. A credit that does not fit the packed slot
    now goes to an overflow balance that withdraw pays out too."""
    escrow, token, reseller, supplier = env.escrow, env.usdc.address, env.reseller, env.supplier
    oid, order = env.delivered_order(env.usdc_listing, reseller=reseller.address)
    _, _, commission = split(order)
    assert commission > 0
    # Fill the reseller's 96-bit balance through the contract itself: it buys an order as large
    # as the ledger takes from an unbonded listing, and is refunded.
    escrow.set_config(env.admin, config(env, min_bond_bps=0))
    huge = MAX96 - 1
    lid, _ = escrow.create_listing(
        supplier, sku=env.world.sku, unit_price=huge, token=token, bond_bps=0
    )
    escrow.commit_batch(supplier, lid, keccak(b"huge"), 1)
    env.fund_token(token, [reseller], huge)
    big_oid, big, _ = escrow.buy(
        reseller, lid, 1, max_unit_price=huge, buyer_pubkey=PUBKEY, value=0
    )
    next_tx_at(env.chain, big.deadline + 1)
    escrow.refund(reseller, big_oid, big)
    assert escrow.balance_of(reseller.address, token) == huge
    # The order naming it pays out all the same: buyer confirms, supplier and platform paid.
    escrow.confirm(env.buyer, oid, order)
    assert escrow.order_hash(oid) == b"\0" * 32
    assert escrow.balance_of(reseller.address, token) == huge + commission > MAX96
    assert escrow.balance_of(supplier.address, token) > 0
    # And withdraw pays the whole of it, packed slot and overflow.
    escrow.withdraw(reseller, token)
    assert env.held(token, reseller.address) == huge + commission
    assert escrow.balance_of(reseller.address, token) == 0


# ---------------------------------------------------------------- finding 8


def test_self_referral_pays_only_what_the_supplier_offered(env: Env) -> None:
    """Audit finding 8 (low): a buyer named its own second address as referrer and rebated the
    platform-wide referralBps. Referrals gave way to resellers, the supplier's opt-in per
    listing: on a listing it did not open, a buyer's second address cannot keep a shop, so
    there is nothing to rebate; on one it opened, a buyer buying from its own shop gets the
    margin back, but the supplier still receives its reseller price less the fee on it, what it
    accepted from every reseller (docs/PROTOCOL.md, "Resellers"; the full rule is in
    test_escrow_resellers.py)."""
    escrow, supplier = env.escrow, env.supplier
    second = env.chain.new_account(ether=1)
    lid, _ = escrow.create_listing(supplier, sku=env.world.sku, unit_price=ETH_PRICE)
    escrow.commit_batch(supplier, lid, keccak(b"r8"), 4)
    assert_reverts(
        env,
        lambda: escrow.set_shop_price(second, lid, ETH_PRICE),
        "EscrowNotDistributable",
        [lid],
    )
    assert_reverts(
        env, lambda: env.buy(lid, reseller=second.address), "EscrowNotInShop", [second.address, lid]
    )
    # Only the supplier opens a listing to resellers.
    assert_reverts(
        env,
        lambda: escrow.set_reseller_price(env.outsider, lid, ETH_PRICE // 2),
        "EscrowWrongCaller",
        [env.outsider.address],
    )
    # It opens it at 90% of the price; the buyer's second address sells it at the full price.
    reseller_price = ETH_PRICE * 9 // 10
    escrow.set_reseller_price(supplier, lid, reseller_price)
    escrow.set_shop_price(second, lid, ETH_PRICE)
    oid, order = env.buy(lid, reseller=second.address)
    assert order.reseller_cut == ETH_PRICE - reseller_price == ETH_PRICE // 10
    before = escrow.balance_of(supplier.address)
    escrow.confirm(env.buyer, oid, env.deliver(oid, order))
    cut = ETH_PRICE // 10
    assert escrow.balance_of(second.address) == cut - cut * FEE_BPS // BPS
    assert (
        escrow.balance_of(supplier.address) - before
        == reseller_price - reseller_price * FEE_BPS // BPS
    )


# ---------------------------------------------------------------- finding 11


def test_admin_role_moves_only_in_two_steps_after_a_delay(env: Env) -> None:
    """Audit finding 11 (hardening): the default admin moves in two steps (OpenZeppelin's
    AccessControlDefaultAdminRules) and cannot be granted directly."""
    escrow, admin, heir = env.escrow, env.admin, env.outsider
    role = escrow.call("DEFAULT_ADMIN_ROLE")
    assert_reverts(
        env,
        lambda: escrow.grant_role(admin, "DEFAULT_ADMIN_ROLE", heir.address),
        "AccessControlEnforcedDefaultAdminRules",
        [],
    )
    escrow._send(admin, "beginDefaultAdminTransfer", heir.address)
    pending, schedule = escrow.call("pendingDefaultAdmin")
    assert pending == heir.address
    assert_reverts(
        env,
        lambda: escrow._send(heir, "acceptDefaultAdminTransfer"),
        "AccessControlEnforcedDefaultAdminDelay",
        [schedule],
    )
    next_tx_at(env.chain, schedule + 1)
    escrow._send(heir, "acceptDefaultAdminTransfer")
    assert escrow.call("hasRole", role, heir.address) is True
    assert escrow.call("hasRole", role, admin.address) is False
    assert escrow.call("defaultAdmin") == heir.address


def test_admin_cannot_touch_funds_already_in_escrow(env: Env) -> None:
    """Audit finding 11: what docs/PROTOCOL.md says the admin cannot do to money in escrow. Fees
    and windows of an order placed earlier do not move; pausing, revoking the licence, closing the
    listing and disallowing the token stop new business only; withdrawFees takes fees and
    nothing else."""
    escrow, admin, token = env.escrow, env.admin, env.usdc.address
    paid_oid, paid = env.buy(env.usdc_listing)
    oid, order = env.delivered_order(env.usdc_listing)
    escrow.set_config(admin, config(env, fee_bps=5_000))
    escrow.pause(admin)
    escrow.authorize(admin, env.supplier.address, env.world.sku, b"\0" * 32)
    escrow.close_listing(admin, env.usdc_listing)
    escrow.set_token_allowed(admin, token, False)
    fees = escrow.call("feesOf", token)
    # Every exit still works under the old terms.
    next_tx_at(env.chain, max(order.deadline, paid.deadline) + 1)
    escrow.refund(env.buyer, paid_oid, paid)
    res = escrow.settle(env.outsider, [(oid, order)])
    assert res.all("OrderSettled")
    fee = order.amount * order.fee_bps // 10_000
    assert order.fee_bps == 200 and escrow.call("feesOf", token) == fees + fee
    escrow.withdraw(env.supplier, token)
    escrow.withdraw(env.buyer, token)
    escrow.withdraw_bond(env.supplier, USDC, token=token)
    before = env.held(token, admin.address)
    env.withdraw_fees(token, admin.address)
    assert env.held(token, admin.address) - before == fees + fee
