"""Pause stops new listings, batches and orders; never withdrawals, refunds or settlement."""

from __future__ import annotations

from eth_utils import keccak

from tests.contracts.helpers import ETH, ETH_BOND, ETH_PRICE, Env, assert_reverts


def test_pause_stops_new_listings_batches_and_orders(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    escrow.pause(env.admin)
    assert escrow.call("paused") is True
    assert_reverts(
        env,
        lambda: escrow.create_listing(supplier, sku=env.world.sku, unit_price=ETH_PRICE),
        "EnforcedPause",
        [],
    )
    assert_reverts(
        env,
        lambda: escrow.commit_batch(supplier, env.eth_listing, keccak(b"r"), 3),
        "EnforcedPause",
        [],
    )
    assert_reverts(env, lambda: env.buy(), "EnforcedPause", [])
    assert_reverts(env, lambda: env.buy(env.usdc_listing), "EnforcedPause", [])
    # Re-opening a listing is a way back to taking orders, so it is refused too ...
    escrow.update_listing(supplier, env.eth_listing, ETH_PRICE, False)
    assert_reverts(
        env,
        lambda: escrow.update_listing(supplier, env.eth_listing, ETH_PRICE, True),
        "EnforcedPause",
        [],
    )
    # ... and after unpausing, everything resumes.
    escrow.unpause(env.admin)
    escrow.update_listing(supplier, env.eth_listing, ETH_PRICE, True)
    env.buy()
    escrow.create_listing(supplier, sku=env.world.sku, unit_price=ETH_PRICE)


def test_pause_lets_every_exit_and_every_open_order_proceed(env: Env) -> None:
    escrow, b1, b2, b3 = env.escrow, *env.world.buyers
    to_confirm = env.delivered_order(buyer=b1)
    to_settle = env.delivered_order(buyer=b2, quantity=2)
    to_refund = env.buy(buyer=b3)
    to_deliver = env.buy(buyer=b1)
    to_rule = env.disputed_order(buyer=b2)
    to_time_out = env.disputed_order(buyer=b3, quantity=3)
    escrow.pause(env.admin)

    escrow.confirm(b1, *to_confirm)
    delivered = env.deliver(*to_deliver)
    escrow.dispute(b1, to_deliver[0], delivered, "ipfs://late", keccak(b"late"))
    escrow.add_evidence(env.supplier, to_rule[0], to_rule[1], "ipfs://reply", keccak(b"reply"))
    escrow.rule(env.arbiter, *to_rule, buyer_bps=2_500, slash_bps=1_000)
    env.chain.travel_to(
        max(to_settle[1].deadline, to_refund[1].deadline, to_time_out[1].deadline) + 1
    )
    escrow.settle(env.outsider, [to_settle])
    escrow.refund(b3, *to_refund)
    escrow.resolve_timed_out(env.outsider, *to_time_out)
    assert escrow.balance_of(b1.address) == 0  # b1 confirmed one order and disputes the other
    for account in (env.supplier, b2, b3):
        escrow.withdraw(account)
        assert escrow.balance_of(account.address) == 0
    env.withdraw_fees(ETH, env.world.fee_recipient.address)
    escrow.deposit_bond(env.supplier, 10**17)
    free, reserved = escrow.bond_of(env.supplier.address)
    escrow.withdraw_bond(env.supplier, free)
    assert escrow.call("paused") is True
    assert (free, reserved) == (
        ETH_BOND + 10**17 - to_rule[1].bond // 10 - delivered.bond,
        delivered.bond,
    )


def test_pause_and_unpause_need_the_pauser_role_and_the_right_state(env: Env) -> None:
    role = env.escrow.call("PAUSER_ROLE")
    assert_reverts(
        env,
        lambda: env.escrow.pause(env.arbiter),
        "AccessControlUnauthorizedAccount",
        [env.arbiter.address, role],
    )
    assert_reverts(env, lambda: env.escrow.unpause(env.admin), "ExpectedPause", [])
    res = env.escrow.pause(env.admin)
    assert res.event("Paused").args["account"].lower() == env.admin.address.lower()
    assert_reverts(env, lambda: env.escrow.pause(env.admin), "EnforcedPause", [])
    assert_reverts(
        env,
        lambda: env.escrow.unpause(env.outsider),
        "AccessControlUnauthorizedAccount",
        [env.outsider.address, role],
    )
    env.escrow.grant_role(env.admin, "PAUSER_ROLE", env.outsider.address)
    env.escrow.unpause(env.outsider)
    assert env.escrow.call("paused") is False
