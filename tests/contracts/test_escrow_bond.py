"""Supplier bonds (保证金): deposit, withdraw the free part, reservation by orders, release."""

from __future__ import annotations

from tests.contracts.helpers import (
    ETH,
    ETH_BOND,
    ETH_BOND_BPS,
    ETH_PRICE,
    USDC,
    USDC_BOND,
    USDC_BOND_BPS,
    USDC_PRICE,
    Env,
    assert_reverts,
)


def test_deposit_native_bond_adds_to_free_and_emits_event(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    held = env.held(ETH)
    res = escrow.deposit_bond(supplier, 3 * 10**17)
    assert escrow.bond_of(supplier.address) == (ETH_BOND + 3 * 10**17, 0)
    assert env.held(ETH) == held + 3 * 10**17
    ev = res.event("BondDeposited")
    assert ev.args["supplier"].lower() == supplier.address.lower()
    assert ev.args["token"].lower() == ETH
    assert (ev.args["amount"], ev.args["free"], ev.args["reserved"]) == (
        3 * 10**17,
        ETH_BOND + 3 * 10**17,
        0,
    )


def test_deposit_usdc_bond_pulls_tokens(env: Env) -> None:
    escrow, supplier, token = env.escrow, env.supplier, env.usdc.address
    before = env.held(token, supplier.address)
    escrow.deposit_bond(supplier, 250 * USDC, token)
    assert escrow.bond_of(supplier.address, token) == (USDC_BOND + 250 * USDC, 0)
    assert env.held(token, supplier.address) == before - 250 * USDC
    assert env.held(token) == USDC_BOND + 250 * USDC


def test_deposit_zero_reverts_bad_argument(env: Env) -> None:
    assert_reverts(
        env, lambda: env.escrow.deposit_bond(env.supplier, 0), "EscrowBadArgument", ["amount"]
    )


def test_deposit_native_with_wrong_value_reverts(env: Env) -> None:
    call = env.escrow.contract.functions.depositBond(ETH, 10**18)
    assert_reverts(
        env,
        lambda: env.tx.send(env.supplier, call, value=10**18 - 1),
        "EscrowWrongValue",
        [10**18 - 1, 10**18],
    )


def test_deposit_token_with_native_value_reverts(env: Env) -> None:
    call = env.escrow.contract.functions.depositBond(env.usdc.address, USDC)
    assert_reverts(
        env, lambda: env.tx.send(env.supplier, call, value=1), "EscrowWrongValue", [1, 0]
    )


def test_deposit_in_a_token_not_allowed_reverts(env: Env) -> None:
    env.escrow.set_token_allowed(env.admin, env.usdc.address, False)
    assert_reverts(
        env,
        lambda: env.escrow.deposit_bond(env.supplier, USDC, env.usdc.address),
        "EscrowTokenNotAllowed",
        [env.usdc.address],
    )


def test_deposit_beyond_80_bits_reverts_amount_too_large(env: Env) -> None:
    token = env.usdc.address
    huge = 2**80
    env.send(env.supplier, env.usdc.functions.mint(env.supplier.address, huge))
    assert_reverts(
        env,
        lambda: env.escrow.deposit_bond(env.supplier, huge, token),
        "EscrowAmountTooLarge",
        [USDC_BOND + huge, 2**80 - 1],
    )


def test_withdraw_free_bond_to_self_and_to_another_address(env: Env) -> None:
    escrow, supplier, other = env.escrow, env.supplier, env.outsider
    before = env.held(ETH, other.address)
    res = escrow.withdraw_bond(supplier, 4 * 10**17, to=other.address)
    assert env.held(ETH, other.address) == before + 4 * 10**17
    assert escrow.bond_of(supplier.address) == (6 * 10**17, 0)
    ev = res.event("BondWithdrawn")
    assert ev.args["to"].lower() == other.address.lower()
    assert (ev.args["amount"], ev.args["free"], ev.args["reserved"]) == (4 * 10**17, 6 * 10**17, 0)
    escrow.withdraw_bond(supplier, 6 * 10**17)
    assert escrow.bond_of(supplier.address) == (0, 0)
    assert env.held(ETH) == 0


def test_withdraw_more_than_free_reverts_bond_short(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.withdraw_bond(env.supplier, ETH_BOND + 1),
        "EscrowBondShort",
        [env.supplier.address, ETH, ETH_BOND + 1, ETH_BOND],
    )


def test_withdraw_zero_or_to_zero_address_reverts(env: Env) -> None:
    assert_reverts(
        env, lambda: env.escrow.withdraw_bond(env.supplier, 0), "EscrowBadArgument", ["amount"]
    )
    call = env.escrow.contract.functions.withdrawBond(ETH, 1, ETH)
    assert_reverts(env, lambda: env.tx.send(env.supplier, call), "EscrowBadArgument", ["to"])


def test_withdraw_by_account_without_bond_reverts(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.withdraw_bond(env.outsider, 1),
        "EscrowBondShort",
        [env.outsider.address, ETH, 1, 0],
    )


def test_buy_reserves_bond_and_reserved_part_cannot_be_withdrawn(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    oid, order = env.buy(quantity=3)
    bond = 3 * ETH_PRICE * ETH_BOND_BPS // 10_000
    assert order.bond == bond
    assert escrow.bond_of(supplier.address) == (ETH_BOND - bond, bond)
    assert_reverts(
        env,
        lambda: escrow.withdraw_bond(supplier, ETH_BOND),
        "EscrowBondShort",
        [supplier.address, ETH, ETH_BOND, ETH_BOND - bond],
        orders=[oid],
    )
    escrow.withdraw_bond(supplier, ETH_BOND - bond)
    assert escrow.bond_of(supplier.address) == (0, bond)


def test_usdc_order_reserves_usdc_bond(env: Env) -> None:
    _, order = env.buy(env.usdc_listing, quantity=4)
    bond = 4 * USDC_PRICE * USDC_BOND_BPS // 10_000
    assert order.bond == bond == 4 * USDC
    assert env.escrow.bond_of(env.supplier.address, env.usdc.address) == (USDC_BOND - bond, bond)
    assert env.escrow.bond_of(env.supplier.address) == (ETH_BOND, 0)


def test_buy_reverts_bond_short_when_free_bond_does_not_cover(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    bond_per_unit = ETH_PRICE * ETH_BOND_BPS // 10_000
    # Leave free bond for exactly two units.
    escrow.withdraw_bond(supplier, ETH_BOND - 2 * bond_per_unit)
    oid, _ = env.buy(quantity=2)
    assert escrow.bond_of(supplier.address) == (0, 2 * bond_per_unit)
    lid = env.eth_listing
    assert_reverts(
        env,
        lambda: escrow.buy(env.buyer, lid, 1, max_unit_price=ETH_PRICE, buyer_pubkey=b"\1" * 32),
        "EscrowBondShort",
        [supplier.address, ETH, bond_per_unit, 0],
        orders=[oid],
    )
    # A top-up lets the next order through.
    escrow.deposit_bond(supplier, bond_per_unit)
    env.buy()
    assert escrow.bond_of(supplier.address) == (0, 3 * bond_per_unit)


def test_settlement_refund_and_timeout_free_the_reservation(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    oid1, o1 = env.delivered_order()
    oid2, o2 = env.buy()
    oid3, o3 = env.disputed_order()
    bond = o1.bond
    assert escrow.bond_of(supplier.address) == (ETH_BOND - 3 * bond, 3 * bond)
    escrow.confirm(env.buyer, oid1, o1)
    assert escrow.bond_of(supplier.address) == (ETH_BOND - 2 * bond, 2 * bond)
    env.chain.travel_to(max(o2.deadline, o3.deadline) + 1)
    escrow.refund(env.outsider, oid2, o2)
    assert escrow.bond_of(supplier.address) == (ETH_BOND - bond, bond)
    escrow.resolve_timed_out(env.outsider, oid3, o3)
    assert escrow.bond_of(supplier.address) == (ETH_BOND, 0)


def test_ruling_slashes_part_of_the_reservation(env: Env) -> None:
    escrow, supplier = env.escrow, env.supplier
    oid, order = env.disputed_order(quantity=2)
    escrow.rule(env.arbiter, oid, order, buyer_bps=0, slash_bps=2_500)
    slashed = order.bond * 2_500 // 10_000
    assert escrow.bond_of(supplier.address) == (ETH_BOND - slashed, 0)
    assert escrow.balance_of(env.buyer.address) == slashed


def test_withdraw_bond_to_a_contract_that_refuses_ether_reverts_transfer_failed(env: Env) -> None:
    refuser = env.usdc.address  # an ERC-20 has no receive function
    assert_reverts(
        env,
        lambda: env.escrow.withdraw_bond(env.supplier, 10**17, to=refuser),
        "EscrowTransferFailed",
        [refuser, 10**17],
    )
