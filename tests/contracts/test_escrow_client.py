"""The Python client and chain helpers against the contract: what the other tests rely on,
including the timing, decoding and nonce defects found while writing the suite (now fixed)."""

from __future__ import annotations

import pytest

from contracts.client import deploy_contract
from contracts.encoding import OrderState
from contracts.errors import ContractRevertError
from tests.contracts.helpers import (
    DIGEST,
    ETH,
    ETH_PRICE,
    FEE_BPS,
    FIXED_GAS,
    STOCK,
    USDC_BOND_BPS,
    USDC_PRICE,
    USDC_RESELLER_PRICE,
    USDC_SHOP_PRICE,
    Env,
    next_tx_at,
    pending_timestamp,
)


def test_gas_estimates_run_at_the_pending_block_timestamp(env: Env) -> None:
    """The deadline tests decode reverts from estimates; that is exact only if estimates see
    the timestamp the transaction itself would get."""
    oid, order = env.buy()
    next_tx_at(env.chain, order.deadline + 1)
    assert env.chain.timestamp() == order.deadline  # the latest block is still at the deadline
    with pytest.raises(ContractRevertError) as info:
        env.escrow.deliver(env.supplier, [(oid, order, DIGEST)])
    assert info.value.name == "EscrowDeadlinePassed"


def test_next_tx_at_lands_the_transaction_on_the_exact_second(env: Env) -> None:
    target = env.chain.timestamp() + 12_345
    next_tx_at(env.chain, target)
    _, _, res = env.escrow.buy(
        env.buyer, env.eth_listing, 1, max_unit_price=ETH_PRICE, buyer_pubkey=b"\1" * 32
    )
    assert env.escrow.block_timestamp(res.block_number) == target
    assert pending_timestamp(env.chain) == target + 1


def test_order_rebuilt_by_the_client_matches_each_transition(env: Env) -> None:
    oid, order = env.buy()
    assert env.escrow.order_matches(oid, order)
    delivered = env.deliver(oid, order)
    assert env.escrow.order_matches(oid, delivered) and not env.escrow.order_matches(oid, order)
    disputed = env.dispute(oid, delivered)
    assert disputed.state == OrderState.DISPUTED and env.escrow.order_matches(oid, disputed)


def test_ledger_storage_reads_agree_with_the_views(env: Env) -> None:
    """The state checks read ledgers from storage; they must say what balanceOf/bondOf say."""
    oid, order = env.delivered_order(quantity=3, reseller=env.reseller.address)
    env.escrow.confirm(env.buyer, oid, order)
    env.buy(env.usdc_listing, quantity=2)
    env.buy(quantity=2)
    supplier = env.supplier.address
    balance, free, reserved = env.ledger(supplier, env.usdc.address)
    assert free > 0 and reserved > 0
    assert all(env.ledger(supplier, ETH)) and env.ledger(env.reseller.address, ETH)[0] > 0
    for account in env.accounts:
        for token in env.tokens:
            views = (env.escrow.balance_of(account, token), *env.escrow.bond_of(account, token))
            assert env.ledger(account, token) == views


def test_getlisting_returns_fifteen_fields(env: Env) -> None:
    fields = env.escrow.call("getListing", env.eth_listing)
    assert len(fields) == 15  # volume tiers added the `tiered` flag before the sku
    assert fields[1] == STOCK
    assert fields[11] == 7 * 24 * 3600  # the arbitration window, fixed at creation
    assert fields[12] == 0  # onChainFrom: off-chain delivery until the supplier opts in
    assert fields[13] is False  # tiered: no volume tiers until the supplier sets them


def test_client_listing_view(env: Env) -> None:
    got = env.escrow.listing(env.usdc_listing)
    assert got["supplier"] == env.supplier.address and got["token"] == env.usdc.address
    assert (got["committed"], got["sold"], got["unit_price"], got["batch_count"]) == (
        STOCK,
        0,
        USDC_PRICE,
        1,
    )
    assert (got["bond_bps"], got["fee_bps"]) == (USDC_BOND_BPS, FEE_BPS)
    assert "referral_bps" not in got
    assert got["active"] is True and got["sku"] == env.world.sku


def test_client_reseller_and_shop_price_views(env: Env) -> None:
    """``resellerPrice`` and ``shopPrice`` read what set_reseller_price and set_shop_price
    wrote, 0 where nothing was; the transactions emit the events the indexer follows."""
    escrow, lid, reseller = env.escrow, env.usdc_listing, env.reseller
    assert escrow.call("resellerPrice", lid) == USDC_RESELLER_PRICE
    assert escrow.call("shopPrice", reseller.address, lid) == USDC_SHOP_PRICE
    assert escrow.call("shopPrice", env.outsider.address, lid) == 0
    res = escrow.set_reseller_price(env.supplier, lid, USDC_RESELLER_PRICE + 1)
    assert dict(res.event("ResellerPriceSet").args) == {
        "listingId": lid,
        "resellerPrice": USDC_RESELLER_PRICE + 1,
    }
    res = escrow.set_shop_price(env.outsider, lid, USDC_PRICE)
    ev = res.event("ShopPriceSet").args
    assert (ev["reseller"].lower(), ev["listingId"], ev["price"]) == (
        env.outsider.address.lower(),
        lid,
        USDC_PRICE,
    )
    assert escrow.call("resellerPrice", lid) == USDC_RESELLER_PRICE + 1
    assert escrow.call("shopPrice", env.outsider.address, lid) == USDC_PRICE


def test_client_decodes_escrow_bad_argument(env: Env) -> None:
    with pytest.raises(ContractRevertError) as info:
        env.escrow.deposit_bond(env.supplier, 0)
    assert info.value.name == "EscrowBadArgument" and info.value.args_ == ("amount",)


def test_set_next_block_timestamp_is_exact(env: Env) -> None:
    target = env.chain.timestamp() + 50
    env.chain.set_next_block_timestamp(target)
    _, _, res = env.escrow.buy(
        env.buyer, env.eth_listing, 1, max_unit_price=ETH_PRICE, buyer_pubkey=b"\1" * 32
    )
    assert env.escrow.block_timestamp(res.block_number) == target


def test_travel_to_mines_a_block_at_the_timestamp(env: Env) -> None:
    # From the pending block: eth-tester stamps it with the wall clock, which passes the latest
    # block's time + 50 when the shared environment sat idle that long (a loaded run did).
    target = pending_timestamp(env.chain) + 50
    env.chain.travel_to(target)
    assert env.chain.timestamp() == target
    assert pending_timestamp(env.chain) >= target + 1


def test_fixed_gas_revert_is_decoded(env: Env) -> None:
    env.tx.fixed_gas = FIXED_GAS
    with pytest.raises(ContractRevertError) as info:
        env.escrow.withdraw(env.outsider)
    assert info.value.name == "EscrowNothingToWithdraw"


def test_escrow_client_after_deploy_contract_by_the_same_account(env: Env) -> None:
    env.escrow.set_token_allowed(env.admin, env.usdc.address, True)  # caches the admin's nonce
    address, _ = deploy_contract(env.chain, env.admin, "TestToken", "Other", "OTH")
    env.escrow.set_token_allowed(env.admin, address, True)
    assert env.escrow.call("config") is not None
