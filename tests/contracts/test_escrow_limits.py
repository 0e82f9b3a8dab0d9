"""Amounts at the edges of the packed ledger (balance 96 bits, bond 80 bits)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from contracts.encoding import Order
from contracts.errors import ContractRevertError
from tests.contracts.helpers import PUBKEY, Env, assert_reverts, config, next_tx_at

#: A unit price whose double is one more than the ledger's balance field can hold.
HUGE_PRICE = 2**95


def huge_listing(env: Env, bond_bps: int) -> int:
    """A USDC listing priced at HUGE_PRICE with two codes, and a buyer who can pay for both."""
    lid, _ = env.escrow.create_listing(
        env.supplier,
        sku=env.world.sku,
        unit_price=HUGE_PRICE,
        token=env.usdc.address,
        bond_bps=bond_bps,
    )
    env.escrow.commit_batch(env.supplier, lid, keccak(b"huge"), 2)
    env.send(env.buyer, env.usdc.functions.mint(env.buyer.address, 4 * HUGE_PRICE))
    return lid


def buy_two(env: Env, lid: int) -> tuple[int, Order]:
    oid, order, _ = env.escrow.buy(
        env.buyer, lid, 2, max_unit_price=HUGE_PRICE, buyer_pubkey=PUBKEY, value=0
    )
    return oid, order


def test_with_a_bond_an_order_beyond_the_ledger_is_refused_at_buy(env: Env) -> None:
    """Any bond on such an order exceeds the 80-bit bond field, so no bond can cover it."""
    lid = huge_listing(env, bond_bps=1_000)
    bond = 2 * HUGE_PRICE * 1_000 // 10_000
    assert bond >= 2**80
    free = env.escrow.bond_of(env.supplier.address, env.usdc.address)[0]
    assert_reverts(
        env,
        lambda: buy_two(env, lid),
        "EscrowBondShort",
        [env.supplier.address, env.usdc.address, bond, free],
    )


@pytest.mark.xfail(
    strict=True,
    raises=ContractRevertError,
    reason="contract bug: with minBondBps = 0 and a listing at bondBps = 0, buy() accepts an "
    "order whose amount (uint128) exceeds the 96-bit ledger balance; refund, confirm and "
    "settle then all revert with SafeCastOverflowedUintDowncast(96, amount), so an "
    "undelivered order's payment is stuck in the escrow for good",
)
def test_order_beyond_the_ledger_is_refused_or_refundable(env: Env) -> None:
    env.escrow.set_config(env.admin, config(env, min_bond_bps=0))
    lid = huge_listing(env, bond_bps=0)
    try:
        oid, order = buy_two(env, lid)
    except ContractRevertError:
        return  # refusing the order up front is a correct fix
    assert order.amount == 2**96
    next_tx_at(env.chain, order.deadline + 1)
    env.escrow.refund(env.buyer, oid, order)
    assert env.escrow.balance_of(env.buyer.address, env.usdc.address) == 2**96
