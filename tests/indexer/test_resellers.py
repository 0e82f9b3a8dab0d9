"""Resellers (分站) in the mirror, on the embedded chain: a listing's reseller price
(ResellerPriceSet), the shops' prices (ShopPriceSet), an order bought in a shop and the
commission its confirmation credits to the reseller, and a reorg that takes price changes away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from eth_utils import keccak

from bench.workload import diff_mirrors, dump_mirror
from bench.world import open_listing
from contracts import order_rules as rules
from contracts.encoding import ZERO_ADDRESS, OrderState
from indexer import models as m
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from bench.world import World

UNIT = 10**16
RESELLER_PRICE = 7 * 10**15
SHOP_PRICE = 9 * 10**15
#: Tables that say how far and how the mirror got there, not what the chain holds.
BOOKKEEPING = ("reorg_undo", "blocks", "checkpoints")


def _rows(engine: sa.Engine, model: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(model.__table__)).all())


def _shops(engine: sa.Engine) -> dict[tuple[str, int], int]:
    return {(r.reseller, r.listing_id): int(r.price) for r in _rows(engine, m.ShopPrice)}


def _reseller_prices(engine: sa.Engine) -> dict[int, int]:
    return {r.listing_id: int(r.reseller_price) for r in _rows(engine, m.Listing)}


@pytest.mark.postgres
def test_a_shop_sale_is_mirrored_and_pays_the_reseller(world: World, postgres_url: str) -> None:
    escrow, supplier, buyer = world.escrow, world.supplier, world.buyers[0]
    shop, gone = world.chain.new_account(), world.chain.new_account()
    lid = open_listing(world, stock=5, unit_price=UNIT, reseller_price=RESELLER_PRICE)
    closed = open_listing(world, stock=0, bond=0, unit_price=UNIT)
    escrow.set_shop_price(shop, lid, SHOP_PRICE)
    escrow.set_shop_price(gone, lid, 8 * 10**15)
    escrow.set_shop_price(gone, lid, 0)  # taken out of its shop
    oid, order, _ = escrow.buy(
        buyer, lid, 2, max_unit_price=SHOP_PRICE, buyer_pubkey=keccak(b"k"), reseller=shop.address
    )
    plain, plain_order, _ = escrow.buy(
        buyer, lid, 1, max_unit_price=UNIT, buyer_pubkey=keccak(b"p")
    )
    delivered, _ = escrow.deliver(
        world.delivery_key, [(oid, order, keccak(b"d")), (plain, plain_order, keccak(b"e"))]
    )
    escrow.confirm(buyer, oid, delivered[0])
    escrow.confirm(buyer, plain, delivered[1])

    with Indexer(world.chain, postgres_url, escrow.address) as ix:
        assert ix.run_once() > 0
    engine = sa.create_engine(postgres_url)
    try:
        assert _reseller_prices(engine) == {lid: RESELLER_PRICE, closed: 0}
        assert escrow.call("resellerPrice", lid) == RESELLER_PRICE
        assert _shops(engine) == {(shop.address, lid): SHOP_PRICE, (gone.address, lid): 0}
        orders = {int(r.order_id): r for r in _rows(engine, m.Order)}
        row = orders[oid]
        cut = (SHOP_PRICE - RESELLER_PRICE) * 2
        assert (row.reseller, int(row.reseller_cut), int(row.amount)) == (
            shop.address,
            cut,
            2 * SHOP_PRICE,
        )
        assert row.state == OrderState.COMPLETED
        assert (orders[plain].reseller, int(orders[plain].reseller_cut)) == (ZERO_ADDRESS, 0)
        # The reseller's commission is its cut less its 2% share of the fee; the supplier
        # receives its reseller price, less its own share of the fee.
        commission = cut - cut * 200 // 10_000
        assert commission == 3_920_000_000_000_000
        payouts = {
            (int(p.order_id), p.kind): (p.account, int(p.amount)) for p in _rows(engine, m.Payout)
        }
        assert payouts[(oid, "commission")] == (shop.address, commission)
        fee = 2 * SHOP_PRICE * 200 // 10_000
        assert payouts[(oid, "fee")] == (escrow.address, fee)
        assert payouts[(oid, "supplier")] == (supplier.address, 2 * SHOP_PRICE - fee - commission)
        assert (plain, "commission") not in payouts
        pay = rules.complete(rules.Terms.from_row(row._mapping))
        assert (pay.commission, pay.fee) == (commission, fee)
        balances = {r.account: int(r.amount) for r in _rows(engine, m.Balance)}
        for account in (shop.address, supplier.address):
            assert balances[account] == escrow.balance_of(account), account
        assert balances[shop.address] == commission
        assert gone.address not in balances
    finally:
        engine.dispose()


def test_a_reorg_takes_reseller_and_shop_prices_back(world: World, tmp_path: Path) -> None:
    """The blocks that changed a reseller price, emptied a shop and opened another are
    reorganised away: the mirror returns to the prices before them, then follows the new
    branch, and ends equal to a fresh index of the canonical chain."""
    chain, escrow, supplier = world.chain, world.escrow, world.supplier
    shop, late = chain.new_account(), chain.new_account()
    lid = open_listing(world, stock=2, unit_price=UNIT, reseller_price=RESELLER_PRICE)
    escrow.set_shop_price(shop, lid, SHOP_PRICE)
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    engine = sa.create_engine(url)
    try:
        with Indexer(chain, url, escrow.address, finality_depth=10) as ix:
            ix.run_once()
            assert _shops(engine) == {(shop.address, lid): SHOP_PRICE}
            fork = chain.snapshot()
            escrow.set_reseller_price(supplier, lid, 8 * 10**15)
            escrow.set_shop_price(shop, lid, 0)
            escrow.set_shop_price(late, lid, 12 * 10**15)
            ix.run_once()
            assert _reseller_prices(engine) == {lid: 8 * 10**15}
            assert _shops(engine) == {(shop.address, lid): 0, (late.address, lid): 12 * 10**15}

            chain.revert(fork)
            for account in (supplier, shop, late):
                escrow.tx.reset_nonce(account.address)
            escrow.set_shop_price(shop, lid, 10 * 10**15)  # the new branch's own change
            chain.mine(3)  # and it is the longer one
            ix.run_once()
            assert ix.stats.reorgs == 1 and ix.stats.rolled_back_blocks == 3
        assert _reseller_prices(engine) == {lid: RESELLER_PRICE}
        assert _shops(engine) == {(shop.address, lid): 10 * 10**15}
        assert escrow.call("shopPrice", late.address, lid) == 0
    finally:
        engine.dispose()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with Indexer(chain, fresh, escrow.address, finality_depth=10) as ix:
        ix.run_once()
    assert (
        diff_mirrors(dump_mirror(url, skip=BOOKKEEPING), dump_mirror(fresh, skip=BOOKKEEPING)) == []
    )
