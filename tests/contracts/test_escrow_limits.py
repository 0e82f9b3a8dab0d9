"""Amounts at the edges of the packed ledger (balance 96 bits, bond 80 bits)."""

from __future__ import annotations

from eth_utils import keccak

from contracts.encoding import Order
from tests.contracts.helpers import PUBKEY, Env, assert_reverts, config

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
    """The amount check comes before the bond check: the error names the amount."""
    lid = huge_listing(env, bond_bps=1_000)
    assert 2 * HUGE_PRICE * 1_000 // 10_000 >= 2**80  # no bond could cover it either
    assert_reverts(
        env,
        lambda: buy_two(env, lid),
        "EscrowAmountTooLarge",
        [2 * HUGE_PRICE, 2**96 - 1],
    )


def test_order_beyond_the_ledger_is_refused_at_buy(env: Env) -> None:
    """Without any bond, an order whose payout could not fit the 96-bit ledger is refused."""
    env.escrow.set_config(env.admin, config(env, min_bond_bps=0))
    lid = huge_listing(env, bond_bps=0)
    assert_reverts(
        env,
        lambda: buy_two(env, lid),
        "EscrowAmountTooLarge",
        [2 * HUGE_PRICE, 2**96 - 1],
    )
