"""Every escrow event, decoded and applied on the embedded chain, checked against the contract.

One lifecycle (`lifecycle` fixture) emits every event type of CodeEscrow, in the native coin and
in a 6-decimal ERC-20. The mirror must then agree with the contract's views: open orders hash to
`orderHash`, balances equal `balanceOf`, the platform's fees `feesOf`, bonds `bondOf`, listings
`getListing`, batches `getBatch`, authorizations and delivery keys their views, reseller and
shop prices `resellerPrice` and `shopPrice`, volume tiers `tiers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from eth_utils import keccak

from bench.workload import diff_mirrors, dump_mirror
from bench.world import commit_codes, demo_codes, make_world, open_listing
from contracts import order_rules as rules
from contracts.artifacts import load
from contracts.client import EscrowConfig, deploy_contract
from contracts.encoding import (
    ZERO_ADDRESS,
    Order,
    OrderState,
    PublishedRelease,
    encode_release_proofs,
    sku_id,
)
from contracts.layout import escrow_struct
from contracts.storage import decode_tiers
from indexer import models as m
from indexer.runner import Indexer

if TYPE_CHECKING:
    from pathlib import Path

    from bench.world import World
    from contracts.chain import Chain


@dataclass
class Lifecycle:
    """A world after a lifecycle that emitted every event type."""

    world: World
    token: str
    open_orders: dict[int, Order] = field(default_factory=dict)
    closed: dict[int, OrderState] = field(default_factory=dict)
    accounts: set[str] = field(default_factory=set)
    steps: list[int] = field(default_factory=list)  # block number after each step
    on_chain_order: int = 0  # delivered with deliverOnChain
    published: PublishedRelease | None = None  # its release
    shops: set[tuple[str, int]] = field(default_factory=set)  # (reseller, listing) ever priced
    via_shop: dict[int, str] = field(default_factory=dict)  # order id -> its reseller


def _run(chain: Chain) -> Lifecycle:
    world = make_world(chain, buyers=3)
    escrow, admin, supplier = world.escrow, world.admin, world.supplier
    b1, b2, b3 = world.buyers
    life = Lifecycle(world=world, token="")
    step = life.steps.append

    def mark() -> None:
        step(chain.w3.eth.block_number)

    # Platform: config, token allow-list, a second authorization (granted, then revoked).
    escrow.set_config(
        admin,
        EscrowConfig(
            fee_recipient=world.fee_recipient.address,
            fee_bps=250,
            arbitration_window=3600,
        ),
    )
    token_address, _ = deploy_contract(chain, admin, "TestToken", "USD Coin", "USDC")
    escrow.tx.reset_nonce(admin.address)  # deploy_contract signed with its own nonce counter
    token = chain.w3.eth.contract(address=token_address, abi=load("TestToken").abi)
    escrow.set_token_allowed(admin, token_address, True)
    life.token = token_address
    escrow.authorize(admin, supplier.address, sku_id("office-365"), keccak(b"att"))
    escrow.authorize(admin, supplier.address, sku_id("office-365"), b"\0" * 32)
    escrow.set_delivery_key(supplier, b3.address, True)
    escrow.accept_delivery_key(b3, supplier.address)
    escrow.set_delivery_key(supplier, b3.address, False)
    mark()

    # A native-coin listing (bond, listing, batch, open to resellers) and a price change.
    native = open_listing(
        world,
        stock=12,
        unit_price=10**16,
        delivery_window=600,
        dispute_window=3600,
        reseller_price=6 * 10**15,
    )
    escrow.update_listing(supplier, native, 10**16, True)
    # Shops (分站): three resellers sell it at their own prices; one changes its mind twice.
    shop_prices = {b1: 9 * 10**15, b2: 12 * 10**15, b3: 10**16}
    for reseller, shop_price in shop_prices.items():
        escrow.set_shop_price(reseller, native, shop_price)
    escrow.set_shop_price(b3, native, 0)
    escrow.set_shop_price(b3, native, 11 * 10**15)
    shop_prices[b3] = 11 * 10**15
    mark()

    # An ERC-20 listing with its own bond.
    for account in (supplier, b1):
        escrow.tx.send(admin, token.functions.mint(account.address, 10**12))
        escrow.tx.send(account, token.functions.approve(escrow.address, 2**255))
    escrow.deposit_bond(supplier, 10**10, token_address)
    usdc, _ = escrow.create_listing(
        supplier,
        sku=world.sku,
        unit_price=5_000_000,
        token=token_address,
        delivery_window=600,
        dispute_window=3600,
        bond_bps=2000,
        metadata_uri="ipfs://u",
    )
    escrow.set_reseller_price(supplier, usdc, 4_000_000)
    # Volume tiers: two on the ERC-20 listing (its order of 2 below pays 5% off); the native
    # listing's set and removed again.
    escrow.set_tiers(supplier, usdc, [(2, 500), (50, 900)])
    escrow.set_tiers(supplier, native, [(4, 100)])
    escrow.set_tiers(supplier, native, [])
    escrow.revoke_coupon(supplier, 7)  # kept raw: coupon orders are OrderPaid like any other
    escrow.set_shop_price(b2, usdc, 5_500_000)
    escrow.set_shop_price(b3, usdc, 4_500_000)
    escrow.set_shop_price(b3, usdc, 0)  # taken out again
    commit_codes(world, usdc, demo_codes(5, 100))
    life.shops = {(str(a.address), lid) for a in (b1, b2, b3) for lid in (native, usdc)} - {
        (b1.address, usdc)
    }
    mark()

    # Orders: through shops or not, quantities, both tokens.
    buys: list[tuple[int, Order]] = []
    for buyer, qty, shop in (
        (b1, 1, b2),
        (b2, 2, None),
        (b1, 1, None),
        (b2, 3, b3),
        (b3, 1, None),
        (b3, 1, b1),
    ):
        price = 10**16 if shop is None else shop_prices[shop]
        oid, order, _ = escrow.buy(
            buyer,
            native,
            qty,
            max_unit_price=price,
            buyer_pubkey=keccak(buyer.address.encode()),
            reseller=ZERO_ADDRESS if shop is None else shop.address,
        )
        buys.append((oid, order))
        if shop is not None:
            life.via_shop[oid] = shop.address
    oid, order, _ = escrow.buy(
        b1,
        usdc,
        2,
        max_unit_price=5_500_000,
        buyer_pubkey=keccak(b"u"),
        reseller=b2.address,
        value=0,
    )
    buys.append((oid, order))
    life.via_shop[oid] = b2.address
    # The supplier closes the ERC-20 listing to resellers: the shop keeps its price on-chain.
    escrow.set_reseller_price(supplier, usdc, 0)
    mark()

    # Deliver all but one (batched), by the delivery key.
    to_deliver = [buys[i] for i in (0, 1, 2, 3, 4, 6)]
    delivered, _ = escrow.deliver(
        world.delivery_key, [(o, od, keccak(o.to_bytes(32, "big"))) for o, od in to_deliver]
    )
    d = {o: od for (o, _), od in zip(to_deliver, delivered, strict=True)}
    mark()

    # On-chain delivery: the native listing's promise, then an order delivered with its release.
    escrow.require_on_chain_release(supplier, native)
    oid, order, _ = escrow.buy(
        b3, native, 2, max_unit_price=10**16, buyer_pubkey=keccak(b"on-chain"), value=2 * 10**16
    )
    life.published = published = PublishedRelease(
        sealed_release=b"sealed" * 40,
        element_root=keccak(b"root"),
        key_hash=keccak(b"key"),
        proofs=encode_release_proofs([(oid & 0xFFFFFFFF, keccak(b"c"), 0, [keccak(b"s")])]),
    )
    (on_chain,), _ = escrow.deliver_on_chain(
        world.delivery_key, [(oid, order, published.digest(), published)]
    )
    life.on_chain_order = oid
    mark()

    # Confirm one in each token; dispute two; evidence from the supplier.
    escrow.confirm(b1, buys[0][0], d[buys[0][0]])
    escrow.confirm(b1, buys[6][0], d[buys[6][0]])
    disputed_a, _ = escrow.dispute(b2, buys[1][0], d[buys[1][0]], "ipfs://a", keccak(b"a"))
    disputed_b, _ = escrow.dispute(b2, buys[3][0], d[buys[3][0]], "ipfs://b", keccak(b"b"))
    escrow.add_evidence(supplier, buys[1][0], disputed_a, "ipfs://s", keccak(b"s"))
    escrow.add_evidence(b2, buys[1][0], disputed_a, "ipfs://a2", keccak(b"a2"))
    escrow.rule(
        world.arbiter,
        buys[1][0],
        disputed_a,
        buyer_bps=7000,
        slash_bps=5000,
        bundle_hash=keccak(b"bundle"),
        reason=b"code-already-redeemed".ljust(32, b"\0"),
    )
    mark()

    # Time passes: settle after the window, refund the undelivered one, the timeout fallback.
    chain.travel_to(max(d[buys[2][0]].deadline, buys[5][1].deadline, disputed_b.deadline) + 1)
    escrow.settle(b3, [(buys[2][0], d[buys[2][0]])])
    escrow.refund(b3, buys[5][0], buys[5][1])
    escrow.resolve_timed_out(b1, buys[3][0], disputed_b)
    mark()

    # Money out: balances, fees, bond; a pause and a closed listing.
    escrow.withdraw(supplier)
    escrow.withdraw(b2)
    escrow.withdraw(supplier, token_address)
    escrow._send(admin, "withdrawFees", ZERO_ADDRESS, world.fee_recipient.address)
    escrow.withdraw_bond(supplier, 10**17)
    escrow.pause(admin)
    escrow.unpause(admin)
    escrow.close_listing(admin, usdc)
    mark()

    life.open_orders = {buys[4][0]: d[buys[4][0]], oid: on_chain}
    life.closed = {
        buys[0][0]: OrderState.COMPLETED,
        buys[6][0]: OrderState.COMPLETED,
        buys[2][0]: OrderState.COMPLETED,
        buys[5][0]: OrderState.REFUNDED,
        buys[1][0]: OrderState.RESOLVED,
        buys[3][0]: OrderState.RESOLVED,
    }
    life.accounts = {a.address for a in (supplier, b1, b2, b3, world.delivery_key)}
    return life


@pytest.fixture(scope="module")
def lifecycle() -> Lifecycle:
    """The lifecycle, once per module (eth-tester runs some 30 transactions a second)."""
    from contracts.chain import embedded_chain

    return _run(embedded_chain())


@pytest.fixture(scope="module")
def mirror(lifecycle: Lifecycle, tmp_path_factory: pytest.TempPathFactory) -> sa.Engine:
    """The lifecycle indexed in one pass into SQLite."""
    path = tmp_path_factory.mktemp("mirror") / "one.db"
    with Indexer(lifecycle.world.chain, f"sqlite:///{path}", lifecycle.world.escrow.address) as ix:
        assert ix.run_once() > 0
        assert ix.run_once() == 0  # nothing new: nothing applied twice
    return sa.create_engine(f"sqlite:///{path}")


def _rows(engine: sa.Engine, model: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(model.__table__)).all())


def test_every_event_type_reaches_raw_events(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    names = {r.name for r in _rows(mirror, m.RawEvent)}
    expected = {e["name"] for e in load("CodeEscrow").abi if e["type"] == "event"}
    never_here = {
        "RoleRevoked",
        "RoleAdminChanged",
        "DeliverySkipped",
        "SettlementSkipped",
        "DefaultAdminTransferScheduled",
        "DefaultAdminTransferCanceled",
        "DefaultAdminDelayChangeScheduled",
        "DefaultAdminDelayChangeCanceled",
    }
    assert expected - names == never_here  # never emitted in this lifecycle
    raw = _rows(mirror, m.RawEvent)
    assert len({(r.chain_id, r.block_hash, r.log_index) for r in raw}) == len(raw)
    assert all(r.address == lifecycle.world.escrow.address for r in raw)


def test_open_orders_hash_to_the_contracts_stored_hash(
    lifecycle: Lifecycle, mirror: sa.Engine
) -> None:
    escrow = lifecycle.world.escrow
    by_id = {int(r.order_id): r for r in _rows(mirror, m.Order)}
    assert len(by_id) == 8
    for oid, expected in lifecycle.open_orders.items():
        rebuilt = Order.from_record(by_id[oid])
        assert rebuilt == expected
        assert escrow.order_hash(oid) == rebuilt.hash()
    for oid, state in lifecycle.closed.items():
        assert by_id[oid].state == state
        assert escrow.order_hash(oid) == b"\0" * 32


def test_on_chain_delivery_is_mirrored(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    """OnChainReleaseRequired sets the listing's on_chain_from (the contract's); ReleasePublished
    marks the order, and its history cites the log in the delivery transaction."""
    escrow = lifecycle.world.escrow
    oid = lifecycle.on_chain_order
    assert escrow.call("MAX_ON_CHAIN_QUANTITY") == rules.MAX_ON_CHAIN_QUANTITY
    listings = {r.listing_id: r for r in _rows(mirror, m.Listing)}
    native = listings[oid >> 32]
    assert native.on_chain_from == escrow.listing(oid >> 32)["on_chain_from"]
    assert native.on_chain_from - 1 <= oid & 0xFFFFFFFF
    assert [r.on_chain_from for r in listings.values() if r is not native] == [0]
    marked = {int(r.order_id) for r in _rows(mirror, m.Order) if r.release_on_chain}
    assert marked == {oid}
    history = [
        (r.name, r.state_after, r.tx_hash)
        for r in sorted(_rows(mirror, m.OrderEvent), key=lambda r: (r.block_number, r.log_index))
        if int(r.order_id) == oid
    ]
    (delivery,) = [r for r in _rows(mirror, m.Delivery) if int(r.order_id) == oid]
    assert history == [
        ("OrderPaid", 1, history[0][2]),
        ("OrderDelivered", 2, delivery.tx_hash),
        ("ReleasePublished", 2, delivery.tx_hash),
    ]
    assert escrow.published_releases([oid]) == {oid: lifecycle.published}
    # What the API answers from these rows (`backend.api.convert`).
    from sqlalchemy.orm import Session

    from backend.api.convert import listing_public, order_public

    record = dict.fromkeys(
        ("orders_completed", "orders_refunded", "disputes_total", "disputes_lost"), 0
    )
    with Session(mirror) as session:
        on_chain = listing_public(session.get_one(m.Listing, oid >> 32), record, True)
        assert on_chain.on_chain_from == native.on_chain_from and on_chain.on_chain_release
        assert on_chain.max_quantity_per_order == rules.MAX_ON_CHAIN_QUANTITY
        plain = next(r for r in session.scalars(sa.select(m.Listing)) if not r.on_chain_from)
        off = listing_public(plain, record, True)
        assert (off.on_chain_from, off.on_chain_release, off.max_quantity_per_order) == (
            0,
            False,
            None,
        )
        orders = {int(r.order_id): order_public(r) for r in session.scalars(sa.select(m.Order))}
        assert {o for o, pub in orders.items() if pub.release_on_chain} == {oid}


def test_order_history_lists_every_step_in_chain_order(
    lifecycle: Lifecycle, mirror: sa.Engine
) -> None:
    history: dict[int, list[tuple[str, int]]] = {}
    for r in sorted(_rows(mirror, m.OrderEvent), key=lambda r: (r.block_number, r.log_index)):
        history.setdefault(int(r.order_id), []).append((r.name, r.state_after))
    disputed = [oid for oid, s in lifecycle.closed.items() if s == OrderState.RESOLVED]
    ruled = history[disputed[0]]
    assert ruled == [
        ("OrderPaid", 1),
        ("OrderDelivered", 2),
        ("DisputeOpened", 3),
        ("EvidenceAdded", 3),
        ("EvidenceAdded", 3),
        ("DisputeRuled", 6),
    ]
    refunded = next(o for o, s in lifecycle.closed.items() if s == OrderState.REFUNDED)
    assert history[refunded] == [("OrderPaid", 1), ("OrderRefunded", 5)]
    assert sum(len(h) for h in history.values()) == len(_rows(mirror, m.OrderEvent))


def test_balances_match_balance_of_and_fees_of(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    escrow = lifecycle.world.escrow
    balances = {(r.account, r.token): int(r.amount) for r in _rows(mirror, m.Balance)}
    for token in (ZERO_ADDRESS, lifecycle.token):
        for account in lifecycle.accounts:
            assert balances.get((account, token), 0) == escrow.balance_of(account, token), account
        assert balances.get((escrow.address, token), 0) == escrow.call("feesOf", token)
    # Payouts minus withdrawals is the balance, for every account.
    credited: dict[tuple[str, str], int] = {}
    for p in _rows(mirror, m.Payout):
        credited[(p.account, p.token)] = credited.get((p.account, p.token), 0) + int(p.amount)
    for w in _rows(mirror, m.Withdrawal):
        if w.kind in ("balance", "fees"):
            credited[(w.account, w.token)] -= int(w.amount)
    assert {k: v for k, v in credited.items() if v} == {k: v for k, v in balances.items() if v}


def test_payouts_follow_the_contracts_formulas(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    orders = {int(r.order_id): r for r in _rows(mirror, m.Order)}
    kinds: dict[int, dict[str, int]] = {}
    for p in _rows(mirror, m.Payout):
        kinds.setdefault(int(p.order_id), {})[p.kind] = int(p.amount)
    for oid, state in lifecycle.closed.items():
        terms = rules.Terms.of(Order.from_record(orders[oid]))
        if state == OrderState.COMPLETED:
            pay = rules.complete(terms)
            assert kinds[oid].get("supplier") == pay.to_supplier
            assert kinds[oid].get("fee", 0) == pay.fee
            assert kinds[oid].get("commission", 0) == pay.commission
        elif state == OrderState.REFUNDED:
            assert kinds[oid] == {"refund": terms.amount}
    disputes = {int(r.order_id): r for r in _rows(mirror, m.Dispute)}
    timeout = next(d for d in disputes.values() if d.arbiter == ZERO_ADDRESS)
    ruled = next(d for d in disputes.values() if d.arbiter != ZERO_ADDRESS)
    assert timeout.ruled and timeout.buyer_bps == 5000 and int(timeout.slashed) == 0
    assert set(kinds[int(timeout.order_id)]) >= {"timeout_buyer", "timeout_supplier"}
    assert ruled.buyer_bps == 7000 and ruled.slash_bps == 5000 and int(ruled.slashed) > 0
    assert kinds[int(ruled.order_id)]["slash"] == int(ruled.slashed)
    assert kinds[int(ruled.order_id)]["ruling_buyer"] == int(ruled.buyer_amount)


def test_bonds_listings_batches_match_the_contract(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    escrow = lifecycle.world.escrow
    supplier = lifecycle.world.supplier.address
    for r in _rows(mirror, m.Bond):
        assert (int(r.free), int(r.reserved)) == escrow.bond_of(supplier, r.token)
    listings = _rows(mirror, m.Listing)
    assert len(listings) == escrow.call("listingCount")
    for r in listings:
        on_chain = escrow.listing(r.listing_id)  # the Listing struct, by field name
        on_chain["sku"] = "0x" + on_chain["sku"].hex()
        del on_chain["batch_count"]  # the mirror counts batches in its batches table
        tiered = on_chain.pop("tiered")  # the mirror keeps the tiers themselves
        assert {name: getattr(r, name) for name in on_chain} == on_chain
        assert int(r.reseller_price) == escrow.call("resellerPrice", r.listing_id)
        assert int(r.tiers) == escrow.call("tiers", r.listing_id)
        assert tiered is (int(r.tiers) != 0)
    tiers = {r.listing_id: decode_tiers(int(r.tiers)) for r in listings}
    assert sorted(tiers.values()) == [[], [(2, 500), (50, 900)]]
    for b in _rows(mirror, m.Batch):
        root, first, count = escrow.batch(b.listing_id, b.batch_index)
        assert (b.root, b.first_index, b.count) == ("0x" + root.hex(), first, count)


def test_reseller_and_shop_prices_match_the_contract(
    lifecycle: Lifecycle, mirror: sa.Engine
) -> None:
    """ResellerPriceSet and ShopPriceSet: the latest price of every listing and shop, a shop
    price set back to 0 kept as a row with price 0, as the contract's mapping holds it."""
    escrow = lifecycle.world.escrow
    listings = {r.listing_id: int(r.reseller_price) for r in _rows(mirror, m.Listing)}
    native, usdc = sorted(listings)
    assert listings == {native: 6 * 10**15, usdc: 0}  # the ERC-20 one was closed again
    shops = {(r.reseller, r.listing_id): int(r.price) for r in _rows(mirror, m.ShopPrice)}
    assert set(shops) == lifecycle.shops
    for (reseller, lid), price in shops.items():
        assert price == escrow.call("shopPrice", reseller, lid), (reseller, lid)
    b1, b2, b3 = (b.address for b in lifecycle.world.buyers)
    assert shops[(b3, native)] == 11 * 10**15  # set, taken out, set again: the last one
    assert shops[(b3, usdc)] == 0 and shops[(b2, usdc)] == 5_500_000


def test_shop_orders_pay_the_reseller_its_commission(
    lifecycle: Lifecycle, mirror: sa.Engine
) -> None:
    """An order bought in a shop carries the reseller and its cut; once it completes, the
    reseller is credited its commission (the cut less its share of the fee) and the supplier
    the rest; a ruling scales the cut to the sellers' share."""
    orders = {int(r.order_id): r for r in _rows(mirror, m.Order)}
    assert {o for o, r in orders.items() if r.reseller != ZERO_ADDRESS} == set(lifecycle.via_shop)
    for oid, reseller in lifecycle.via_shop.items():
        row = orders[oid]
        assert row.reseller == reseller
        # The ERC-20 order of 2 reached its 5% tier: the reseller price is discounted alike.
        floor = 6 * 10**15 if row.token == ZERO_ADDRESS else 4_000_000 * 95 // 100
        unit = int(row.amount) // int(row.quantity)
        assert int(row.reseller_cut) == (unit - floor) * int(row.quantity) > 0
    assert all(int(r.reseller_cut) == 0 for r in orders.values() if r.reseller == ZERO_ADDRESS)
    commissions: dict[int, tuple[str, int]] = {}
    for p in _rows(mirror, m.Payout):
        if p.kind == "commission":
            assert int(p.order_id) not in commissions
            commissions[int(p.order_id)] = (p.account, int(p.amount))
    # Completed in a shop: buys 0 (native, b2's shop) and 6 (USDC, b2's shop); the timed-out
    # dispute of buy 3 (b3's shop) splits the payment in half and the cut with it.
    ended = {
        oid: state
        for oid, state in lifecycle.closed.items()
        if oid in lifecycle.via_shop and state != OrderState.REFUNDED
    }
    assert set(commissions) == set(ended)
    for oid, state in ended.items():
        terms = rules.Terms.from_row(orders[oid]._mapping)
        if state == OrderState.COMPLETED:
            pay = rules.complete(terms)
            cut = terms.reseller_cut
        else:
            pay = rules.resolve(terms, 5000, 0)
            cut = terms.reseller_cut * (terms.amount - pay.buyer_amount) // terms.amount
        assert commissions[oid] == (lifecycle.via_shop[oid], cut - cut * terms.fee_bps // 10_000)
        assert pay.commission == commissions[oid][1] > 0
    b2 = lifecycle.world.buyers[1].address
    escrow = lifecycle.world.escrow
    balances = {(r.account, r.token): int(r.amount) for r in _rows(mirror, m.Balance)}
    assert balances[(b2, lifecycle.token)] == escrow.balance_of(b2, lifecycle.token) > 0


def test_platform_tables_match_the_contract(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    escrow = lifecycle.world.escrow
    (cfg,) = _rows(mirror, m.PlatformConfig)
    config = escrow_struct("Config")
    assert tuple(getattr(cfg, name) for name in config.fields) == tuple(escrow.call("config"))
    (tok,) = _rows(mirror, m.AllowedToken)
    assert tok.token == lifecycle.token and tok.allowed
    for a in _rows(mirror, m.Authorization):
        on_chain = escrow.call("authorization", a.supplier, bytes.fromhex(a.sku[2:]))
        assert a.attestation_hash == "0x" + bytes(on_chain).hex()
    keys = {(k.supplier, k.key): k.enabled for k in _rows(mirror, m.DeliveryKey)}
    for (supplier, key), enabled in keys.items():
        assert escrow.call("isDeliveryKey", supplier, key) == enabled
    assert False in keys.values() and True in keys.values()


def test_rows_cite_their_logs(lifecycle: Lifecycle, mirror: sa.Engine) -> None:
    raw = {(r.block_number, r.log_index): r for r in _rows(mirror, m.RawEvent)}
    for model in (m.OrderEvent, m.Delivery, m.Evidence, m.Payout, m.Withdrawal, m.Batch):
        for r in _rows(mirror, model):
            assert raw[(r.block_number, r.log_index)].tx_hash == r.tx_hash
    blocks = {b.number: b for b in _rows(mirror, m.Block)}
    w3 = lifecycle.world.chain.w3
    for number in {r.block_number for r in raw.values()}:
        assert blocks[number].has_events
        assert blocks[number].hash == "0x" + bytes(w3.eth.get_block(number)["hash"]).hex()
    (cp,) = _rows(mirror, m.Checkpoint)
    assert cp.block_number == w3.eth.block_number


def test_indexing_step_by_step_gives_the_same_rows(
    lifecycle: Lifecycle, mirror: sa.Engine, tmp_path: Path
) -> None:
    """Many small passes (cache, batching, journal) end where one pass does."""
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    chain = lifecycle.world.chain
    source_head = chain.w3.eth.block_number
    from indexer.source import TesterSource

    class Upto(TesterSource):
        """The embedded chain seen only up to `limit` (an older head)."""

        limit = 0

        def head(self) -> int:
            return min(super().head(), self.limit)

        def latest(self) -> Any:
            h = self.header(self.head())
            assert h is not None
            return h

    source = Upto(chain.w3, max_range=3)
    with Indexer(source, url, lifecycle.world.escrow.address, finality_depth=2) as ix:
        for limit in [*lifecycle.steps, source_head]:
            source.limit = limit
            ix.run_once()
    stepped = dump_mirror(url, skip=("reorg_undo", "blocks", "checkpoints"))
    whole = dump_mirror(mirror, skip=("reorg_undo", "blocks", "checkpoints"))
    assert diff_mirrors(stepped, whole) == []


@pytest.mark.parametrize("max_range", [3, 1000])
def test_handlers_read_only_what_they_declare(
    lifecycle: Lifecycle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_range: int
) -> None:
    """Every latest-value row a handler reads was declared with `on` and loaded in bulk before
    the batch ran: none is fetched on its own, in small batches or in one."""
    from indexer.apply import HANDLERS, UNMIRRORED, Applier, Prepared
    from indexer.source import TesterSource

    abi_events = {e["name"] for e in load("CodeEscrow").abi if e["type"] == "event"}
    assert set(HANDLERS) | UNMIRRORED == abi_events and not set(HANDLERS) & UNMIRRORED
    assert set(rules.ORDER_EVENTS) <= set(HANDLERS)
    assert {n for n, h in HANDLERS.items() if h.parties is not None} == set(rules.MONEY_EVENTS)
    late: list[tuple[str, Any]] = []
    real = Applier.prepare

    def spy(self: Applier, *args: Any, **kwargs: Any) -> Prepared:
        prepared = real(self, *args, **kwargs)
        late.extend(prepared.working_set.late)
        return prepared

    monkeypatch.setattr(Applier, "prepare", spy)
    source = TesterSource(lifecycle.world.chain.w3, max_range=max_range)
    url = f"sqlite:///{tmp_path / 'declared.db'}"
    with Indexer(source, url, lifecycle.world.escrow.address) as ix:
        while ix.run_once():
            pass
    assert late == []
