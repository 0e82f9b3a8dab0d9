"""Gas of the escrow on the embedded chain, against a plain escrow measured in the same run.

Orders are measured in steady state: the supplier already holds a balance and bond, so no
measurement includes the one-off cost of a first write to an empty slot. The one exception is
measured on purpose: an order bought in a reseller's shop (分站) is reported for the reseller's
first sale in the token, whose commission is the first credit to its empty ledger slot, and for
a later sale.

Gas is deterministic and the whole run takes seconds, so quick mode measures exactly what the
full run does (a smaller batch would change what ``batch50_per_order`` means).
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak, to_checksum_address
from nacl.public import PrivateKey
from rich.console import Console

from backend.release import CodeToSeal, published_from_manifest, seal_release
from bench.world import World, make_world, open_listing
from contracts.chain import embedded_chain
from contracts.client import EscrowClient, deploy_contract
from contracts.coupons import Coupon
from contracts.encoding import ZERO_ADDRESS, PublishedRelease, split_order_id
from contracts.order_rules import coupon_prices, tier_price

BATCH = 50
_STEPS = ("buy", "deliver", "confirm", "settle_after_window", "refund", "dispute", "rule")
_RESELLER_STEPS = (
    "set_reseller_price",
    "set_shop_price",
    "buy",
    "deliver",
    "confirm_first_sale",
    "confirm",
)
_TIER_STEPS = ("set_tiers", "buy", "deliver", "confirm")
_COUPON_STEPS = (
    "buy_unlimited",
    "buy_first_in_word",
    "buy_counted",
    "deliver",
    "confirm",
    "revoke",
)
FIELDS = (
    *(f"single.{step}" for step in _STEPS),
    "batch50_per_order.deliver",
    "batch50_per_order.settle_after_window",
    "lifecycle_single",
    "lifecycle_batched",
    *(f"reseller.{step}" for step in _RESELLER_STEPS),
    "lifecycle_single_reseller_first_sale",
    "lifecycle_single_reseller",
    *(f"tiers.{step}" for step in _TIER_STEPS),
    "lifecycle_single_tiered",
    *(f"coupons.{step}" for step in _COUPON_STEPS),
    "lifecycle_single_coupon",
    "baseline_lifecycle",
    "on_chain.deliver_1_code",
    "on_chain.deliver_10_codes",
    "on_chain.per_extra_code",
    "on_chain.batch50_per_order",
    "on_chain.release_bytes_1_code",
)
"""Dotted paths of the result's leaves, all gas amounts (ints) but the release size (bytes)."""

#: The plain orders' price, and the same price in a reseller's shop over a reseller price 10%
#: below it: a shop order pays what a plain one does, and carries a cut.
_PRICE = 10**16
_RESELLER_PRICE = 9 * 10**15
#: The volume tiers of the tier measurement: 5% off from 2 codes, 10% off from 10.
_TIERS = [(2, 500), (10, 1_000)]

#: Codes as the trade sells them (a 4x5 game card), in a listing of 1,000 codes (proofs of 10).
_CODE = b"KMNG-7F3Q-XP2D-9WLA-H4TZ"
_PROOF_DEPTH = 10


def _buy(
    escrow: EscrowClient,
    buyer: Any,
    listing_id: int,
    quantity: int = 1,
    reseller: str = ZERO_ADDRESS,
    unit_price: int = _PRICE,
) -> tuple[int, Any, int]:
    """Buy at `unit_price` a code (`_PRICE` unless a volume tier lowers it), at the listing's
    price or in `reseller`'s shop; returns the order's id, the order and the gas of the
    purchase."""
    oid, order, res = escrow.buy(
        buyer,
        listing_id,
        quantity,
        max_unit_price=unit_price,
        buyer_pubkey=keccak(text=f"pk{buyer.address}"),
        reseller=reseller,
        value=unit_price * quantity,
    )
    return oid, order, res.gas_used


def _published(escrow: EscrowClient, oid: int, quantity: int) -> tuple[bytes, PublishedRelease]:
    """A real release of `quantity` codes sealed to a fresh key, as the agent publishes it."""
    _, first = split_order_id(oid)
    codes = [
        CodeToSeal(
            index=first + j,
            code=_CODE,
            salt=keccak(j.to_bytes(32, "big")),
            commitment=keccak(b"c" + j.to_bytes(32, "big")),
            batch_index=0,
            batch_root=keccak(b"root"),
            proof=[keccak(bytes([d])) for d in range(_PROOF_DEPTH)],
        )
        for j in range(quantity)
    ]
    built = seal_release(
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        order_id=oid,
        buyer_pubkey=bytes(PrivateKey.generate().public_key),
        codes=codes,
    )
    return built.digest, published_from_manifest(built.sealed, built.manifest)


def _on_chain(console: Console, world: World, buyer: Any) -> dict[str, int]:
    """Gas of ``deliverOnChain``: one order of 1 and of 10 codes, and 50 one-code orders."""
    escrow = world.escrow
    console.print("[dim]on-chain delivery: 1 code, 10 codes, a batch of 50[/dim]")
    listing = open_listing(world, stock=BATCH + 40, dispute_window=3600)
    escrow.require_on_chain_release(world.supplier, listing)

    def deliver(orders: list[tuple[int, Any, int]]) -> tuple[int, int]:
        items = []
        for oid, order, _ in orders:
            digest, pub = _published(escrow, oid, order.quantity)
            items.append((oid, order, digest, pub))
        _, res = escrow.deliver_on_chain(world.delivery_key, items)
        return res.gas_used, sum(len(i[3].sealed_release) + len(i[3].proofs) for i in items)

    deliver([_buy(escrow, buyer, listing)])  # warm: the listing's first on-chain delivery
    one, one_bytes = deliver([_buy(escrow, buyer, listing)])
    ten, _ = deliver([_buy(escrow, buyer, listing, 10)])
    batch, _ = deliver([_buy(escrow, buyer, listing) for _ in range(BATCH)])
    return {
        "deliver_1_code": one,
        "deliver_10_codes": ten,
        "per_extra_code": round((ten - one) / 9),
        "batch50_per_order": round(batch / BATCH),
        "release_bytes_1_code": one_bytes,
    }


def _warm(world: World, listing: int) -> None:
    """One full order, so that the balances and counters every later order touches exist."""
    escrow, buyer = world.escrow, world.buyers[0]
    oid, order, _ = _buy(escrow, buyer, listing)
    (order,), _ = escrow.deliver(world.delivery_key, [(oid, order, keccak(b"warm"))])
    escrow.confirm(buyer, oid, order)


def _batch(console: Console, world: World, listing: int) -> tuple[float, float, float]:
    """A batch of `BATCH` orders bought, delivered in one transaction and settled in another
    after their window: (buy, deliver, settle) gas per order."""
    escrow, chain = world.escrow, world.chain
    buyer, other = world.buyers
    console.print(f"[dim]batch of {BATCH}: buy, deliver in one tx, settle in one tx[/dim]")
    batch = [_buy(escrow, buyer, listing) for _ in range(BATCH)]
    delivered, res = escrow.deliver(
        world.delivery_key, [(oid, o, keccak(oid.to_bytes(32, "big"))) for oid, o, _ in batch]
    )
    deliver_per = res.gas_used / BATCH
    chain.travel_to(max(o.deadline for o in delivered) + 1)
    res = escrow.settle(other, [(b[0], o) for b, o in zip(batch, delivered, strict=True)])
    settle_per = res.gas_used / BATCH
    return sum(b[2] for b in batch) / BATCH, deliver_per, settle_per


def _reseller(console: Console, world: World, listing: int) -> dict[str, int]:
    """Gas of the reseller path on a warm listing: opening it to resellers, a shop's price, and
    buy, deliver and confirm of one order bought in the shop, for the reseller's first sale in
    the token (its commission is the first credit to its empty ledger slot) and a later one."""
    escrow, buyer = world.escrow, world.buyers[0]
    reseller = world.chain.new_account(ether=1)
    console.print("[dim]a reseller's shop: its first sale, then a later one[/dim]")
    steps = {
        "set_reseller_price": escrow.set_reseller_price(
            world.supplier, listing, _RESELLER_PRICE
        ).gas_used,
        "set_shop_price": escrow.set_shop_price(reseller, listing, _PRICE).gas_used,
    }
    for confirm in ("confirm_first_sale", "confirm"):
        oid, order, steps["buy"] = _buy(escrow, buyer, listing, reseller=reseller.address)
        digest = keccak(b"shop" + oid.to_bytes(32, "big"))
        (order,), res = escrow.deliver(world.delivery_key, [(oid, order, digest)])
        steps["deliver"] = res.gas_used
        steps[confirm] = escrow.confirm(buyer, oid, order).gas_used
    return steps


def _tiered(console: Console, world: World, listing: int) -> dict[str, int]:
    """Gas of a purchase at a volume tier (批发价) on a warm listing: setting two tiers, then buy,
    deliver and confirm of an order of 2 codes at the first tier's 5% off."""
    escrow, buyer = world.escrow, world.buyers[0]
    console.print("[dim]volume tiers: an order of 2 at 5% off[/dim]")
    steps = {"set_tiers": escrow.set_tiers(world.supplier, listing, _TIERS).gas_used}
    unit = tier_price(_PRICE, _TIERS, 2)
    oid, order, steps["buy"] = _buy(escrow, buyer, listing, quantity=2, unit_price=unit)
    digest = keccak(b"tier" + oid.to_bytes(32, "big"))
    (order,), res = escrow.deliver(world.delivery_key, [(oid, order, digest)])
    steps["deliver"] = res.gas_used
    steps["confirm"] = escrow.confirm(buyer, oid, order).gas_used
    return steps


def _couponed(console: Console, world: World, listing: int) -> dict[str, int]:
    """Gas of purchases with a coupon of 10% off on a warm listing: one with no use limit (no
    counter is written), the first counted use in a fresh counter word (a zero slot written),
    and a counted use in a word already written (seven coupon ids in eight); then delivery and
    confirmation of the last, and a revocation."""
    escrow, buyer = world.escrow, world.buyers[0]
    console.print("[dim]coupons: unlimited, first in a counter word, a later one[/dim]")
    escrow.set_tiers(world.supplier, listing, [])  # priced as the plain order, no tier to read
    expiry = world.chain.timestamp() + 30 * 86_400
    unit = coupon_prices(_PRICE, None, 1_000, 0)[0]
    steps: dict[str, int] = {}
    order: Any = None
    for step, coupon_id, max_uses in (
        ("buy_unlimited", 1, 0),
        ("buy_first_in_word", 2, 5),
        ("buy_counted", 3, 5),
    ):
        coupon = escrow.sign_coupon(
            world.supplier,
            Coupon(listing, bytes(32), ZERO_ADDRESS, 1_000, 0, max_uses, expiry, coupon_id),
        )
        oid, order, res = escrow.buy(
            buyer,
            listing,
            1,
            coupon=coupon,
            max_unit_price=unit,
            buyer_pubkey=keccak(text=f"pk{buyer.address}"),
        )
        steps[step] = res.gas_used
    digest = keccak(b"coupon" + oid.to_bytes(32, "big"))
    (order,), res = escrow.deliver(world.delivery_key, [(oid, order, digest)])
    steps["deliver"] = res.gas_used
    steps["confirm"] = escrow.confirm(buyer, oid, order).gas_used
    steps["revoke"] = escrow.revoke_coupon(world.supplier, 1).gas_used
    return steps


def settle_per_order_in_a_batch(console: Console) -> int:
    """Only the batch of `run`: the gas per order of settling `BATCH` delivered orders in one
    transaction (the keeper benchmark's baseline), on a fresh embedded chain."""
    world = make_world(embedded_chain(), buyers=2)
    listing = open_listing(world, stock=BATCH + 1, dispute_window=3600)
    console.print("[dim]warming up: one full order so balances exist[/dim]")
    _warm(world, listing)
    return round(_batch(console, world, listing)[2])


def run(console: Console, quick: bool = False) -> dict[str, Any]:  # noqa: ARG001
    """Measure every step once, a 50-order batch, and the plain baseline.

    Args:
        console: Where progress goes.
        quick: Accepted for `kameng bench --quick`; the gas run is already quick and
            deterministic, so it measures the same things either way.

    Returns:
        Gas per step, per order in a batch of 50, per lifecycle (plain, and bought in a
        reseller's shop for its first and a later sale, and at a volume tier), and the
        baseline's lifecycle; its
        leaves are `FIELDS`.
    """
    chain = embedded_chain()
    world = make_world(chain, buyers=2)
    escrow = world.escrow
    buyer, other = world.buyers
    listing = open_listing(world, stock=BATCH + 20, dispute_window=3600)
    console.print("[dim]warming up: one full order so balances exist[/dim]")
    _warm(world, listing)

    single: dict[str, int] = {}
    oid, order, single["buy"] = _buy(escrow, buyer, listing)
    (order,), res = escrow.deliver(world.delivery_key, [(oid, order, keccak(b"r1"))])
    single["deliver"] = res.gas_used
    single["confirm"] = escrow.confirm(buyer, oid, order).gas_used

    oid2, order2, _ = _buy(escrow, buyer, listing)
    (order2,), _ = escrow.deliver(world.delivery_key, [(oid2, order2, keccak(b"r2"))])
    chain.travel_to(order2.deadline + 1)
    single["settle_after_window"] = escrow.settle(other, [(oid2, order2)]).gas_used

    oid3, order3, _ = _buy(escrow, buyer, listing)
    chain.travel_to(order3.deadline + 1)
    single["refund"] = escrow.refund(buyer, oid3, order3).gas_used

    oid4, order4, _ = _buy(escrow, buyer, listing)
    (order4,), _ = escrow.deliver(world.delivery_key, [(oid4, order4, keccak(b"r4"))])
    order4, res = escrow.dispute(buyer, oid4, order4, "ipfs://evidence", keccak(b"evidence"))
    single["dispute"] = res.gas_used
    single["rule"] = escrow.rule(
        world.arbiter, oid4, order4, buyer_bps=10_000, slash_bps=5000, bundle_hash=keccak(b"bundle")
    ).gas_used

    buy_avg, deliver_per, settle_per = _batch(console, world, listing)
    reseller = _reseller(console, world, listing)
    tiers = _tiered(console, world, listing)
    coupons = _couponed(console, world, listing)

    console.print("[dim]baseline: a plain escrow (struct per order, no bond/fees/batches)[/dim]")
    plain_addr, _ = deploy_contract(chain, world.admin, "PlainEscrow")
    plain = EscrowClient(chain, plain_addr)  # reuse its transactor for signing
    plain_contract = chain.w3.eth.contract(
        address=to_checksum_address(plain_addr), abi=_plain_abi()
    )
    seller = world.supplier
    baseline = 0
    for _ in range(2):  # the second round is steady state
        r1 = plain.tx.send(
            buyer, plain_contract.functions.buy(seller.address, 10**16), value=10**16
        )
        deal = int(plain_contract.functions.count().call())
        r2 = plain.tx.send(seller, plain_contract.functions.deliver(deal, keccak(b"d")))
        r3 = plain.tx.send(buyer, plain_contract.functions.confirm(deal))
        assert isinstance(r1, dict) and isinstance(r2, dict) and isinstance(r3, dict)
        baseline = int(r1["gasUsed"]) + int(r2["gasUsed"]) + int(r3["gasUsed"])

    on_chain = _on_chain(console, world, buyer)

    lifecycle_single = single["buy"] + single["deliver"] + single["confirm"]
    lifecycle_batched = round(buy_avg + deliver_per + settle_per)
    in_shop = reseller["buy"] + reseller["deliver"]
    return {
        "single": single,
        "batch50_per_order": {
            "deliver": round(deliver_per),
            "settle_after_window": round(settle_per),
        },
        "lifecycle_single": lifecycle_single,
        "lifecycle_batched": lifecycle_batched,
        "reseller": reseller,
        "lifecycle_single_reseller_first_sale": in_shop + reseller["confirm_first_sale"],
        "lifecycle_single_reseller": in_shop + reseller["confirm"],
        "tiers": tiers,
        "lifecycle_single_tiered": tiers["buy"] + tiers["deliver"] + tiers["confirm"],
        "coupons": coupons,
        "lifecycle_single_coupon": coupons["buy_counted"] + coupons["deliver"] + coupons["confirm"],
        "baseline_lifecycle": baseline,
        "on_chain": on_chain,
    }


def _plain_abi() -> list[dict[str, Any]]:
    from contracts.artifacts import load

    return load("PlainEscrow").abi
