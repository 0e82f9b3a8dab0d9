"""The order rules in Python (`contracts.order_rules`) agree with the deployed contract.

Hypothesis draws a platform fee, a listing (price, bond rate, token, and a reseller price when
it is open to resellers), orders (quantities, each bought at the listing's price or in a
reseller's shop at a shop price at least the reseller price; the shop is a third account's,
the buyer's own or the supplier's) and an ending: confirm, settle (of one or two orders in one
call, which may mix shop and plain orders), refund after the delivery deadline, a ruling with
random shares, the arbitration timeout, or a bad-code proof. Each example runs on one shared
deployed escrow, reverted to a snapshot afterwards, and compares every ledger entry the contract
moved (balances, free and reserved bond, platform fees, what the escrow holds), the amounts its
events carry and the order hashes it stores with what the rules predict.

About 35 examples run in 40 to 50 s; KAMENG_RULES_EXAMPLES=500 runs more. The unit tests at the
end pin a few values by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import order_rules as rules
from contracts.client import EscrowConfig, rebuild_orders
from contracts.encoding import ZERO_ADDRESS, Order, OrderState
from tests.contracts.helpers import ETH, PUBKEY, Env, Stock, bad_code_proof, commit_stock

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.client import TxResult

ENDINGS = ("confirm", "settle", "refund", "rule", "timeout", "prove")
#: Whose shop a resold order is bought in: a third account's, the buyer's own or the supplier's.
SHOPS = ("reseller", "buyer", "supplier")
#: Free plus reserved bond never exceeds this (the contract's _MAX_BOND); keep clear of it.
BOND_ROOM = 2**80 - 1 - 10**15
#: Native-coin orders stay within what a test buyer holds (1,000 ether).
MAX_ETH_AMOUNT = 10**20
#: Transactions skip gas estimation (half the time of an example); a revert still raises.
FIXED_GAS = 3_000_000


@dataclass(frozen=True)
class Case:
    """One drawn example."""

    token: str  # "eth" or "usdc"
    fee_bps: int
    bond_bps: int
    ending: str
    quantities: tuple[int, ...]
    resold: tuple[bool, ...]  # per order: bought in the shop, else at the listing's price
    unit_price: int  # what each order pays a unit: the shop's price when resold
    listing_price: int  # the listing's own price (unit_price unless an order is resold)
    reseller_price: int  # the listing's reseller price (0: not open to resellers)
    shop: str  # one of SHOPS
    buyer_bps: int
    slash_bps: int


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Rates within the contract's limits, orders that fit its ledgers, and an ending."""
    fee_bps = draw(st.integers(0, rules.MAX_FEES_BPS))
    bond_bps = draw(st.integers(0, rules.BPS))
    ending = draw(st.sampled_from(ENDINGS))
    token = draw(st.sampled_from(["eth", "usdc"]))
    if ending == "prove":  # the codes are real (committed and released): keep them few
        quantities: tuple[int, ...] = (draw(st.integers(1, 4)),)
    else:
        count = 2 if ending == "settle" and draw(st.booleans()) else 1
        big = st.integers(1, 2**32 - 1) if count == 1 else st.integers(1, 2**31 - 1)
        quantities = tuple(draw(st.one_of(st.integers(1, 5), big)) for _ in range(count))
    max_amount = rules.MAX_AMOUNT if token == "usdc" else MAX_ETH_AMOUNT
    if bond_bps:
        max_amount = min(max_amount, BOND_ROOM * rules.BPS // bond_bps // len(quantities))
    top = max_amount // max(quantities)
    unit_price = draw(st.one_of(st.integers(1, min(top, 10**6)), st.integers(1, top)))
    resold = tuple(draw(st.booleans()) for _ in quantities)
    reseller_price = listing_price = 0
    if any(resold):
        # The shop's price is `unit_price`; the reseller price anywhere up to it, often close.
        reseller_price = draw(
            st.one_of(
                st.integers(1, unit_price),
                st.integers(max(1, unit_price - 10**6), unit_price),
            )
        )
        listing_price = draw(st.integers(1, top))
    return Case(
        token=token,
        fee_bps=fee_bps,
        bond_bps=bond_bps,
        ending=ending,
        quantities=quantities,
        resold=resold,
        unit_price=unit_price,
        listing_price=unit_price if all(not r for r in resold) else listing_price,
        reseller_price=reseller_price,
        shop=draw(st.sampled_from(SHOPS)),
        buyer_bps=draw(st.integers(0, rules.BPS)),
        slash_bps=draw(st.integers(0, rules.BPS)),
    )


Books = dict[str, int]


def books(env: Env, token: str, accounts: dict[str, str]) -> Books:
    """What the escrow owes and holds in `token`: each account's withdrawable balance (ledger
    plus overflow), the supplier's free and reserved bond, the platform's fees, its holdings."""
    escrow = env.escrow
    out = {role: escrow.balance_of(address, token) for role, address in accounts.items()}
    out["bond_free"], out["bond_reserved"] = escrow.bond_of(accounts["supplier"], token)
    out["fees"] = int(escrow.call("feesOf", token))
    out["held"] = env.held(token)
    return out


def moved(before: Books, **deltas: int) -> Books:
    """`before` with some entries moved by the given amounts."""
    return {k: v + deltas.get(k, 0) for k, v in before.items()}


def prices(case: Case) -> list[int]:
    """The unit price each order of the case pays: the shop's, or the listing's."""
    return [case.unit_price if r else case.listing_price for r in case.resold]


def shop_owner(env: Env, case: Case) -> LocalAccount:
    """The account whose shop the case's resold orders are bought in."""
    return {"reseller": env.reseller, "buyer": env.buyer, "supplier": env.supplier}[case.shop]


def open_listing(env: Env, case: Case, token: str) -> tuple[int, Stock | None]:
    """Set the platform's fee, open a listing with the case's terms (and, when an order is
    resold, open it to resellers and put it in the shop), stock and bond it."""
    escrow, supplier, admin = env.escrow, env.supplier, env.admin
    escrow.set_config(
        admin,
        EscrowConfig(
            fee_recipient=env.world.fee_recipient.address, fee_bps=case.fee_bps, min_bond_bps=0
        ),
    )
    lid, _ = escrow.create_listing(
        supplier,
        sku=env.world.sku,
        unit_price=case.listing_price,
        token=token,
        bond_bps=case.bond_bps,
    )
    if case.reseller_price:
        escrow.set_reseller_price(supplier, lid, case.reseller_price)
        escrow.set_shop_price(shop_owner(env, case), lid, case.unit_price)
    stock = None
    total = sum(case.quantities)
    if case.ending == "prove":
        stock = commit_stock(env, lid, total)
    else:  # never opened: any nonzero root will do
        escrow.commit_batch(supplier, lid, keccak(os.urandom(32)), total, 0)
    amounts = [price * q for price, q in zip(prices(case), case.quantities, strict=True)]
    bond = sum(a * case.bond_bps // rules.BPS for a in amounts)
    if token != ETH:
        usdc = env.usdc.functions
        env.send(env.admin, usdc.mint(env.buyer.address, sum(amounts)))
        if bond:
            env.send(env.admin, usdc.mint(supplier.address, bond))
    if bond:
        escrow.deposit_bond(supplier, bond, token)
    return lid, stock


def end_orders(
    env: Env, case: Case, placed: list[tuple[int, Order]], stock: Stock | None
) -> tuple[TxResult, list[tuple[int, Order]], list[rules.Payout]]:
    """Take the placed orders to the case's ending; returns the ending's transaction, the
    orders as they were just before it, and the payouts the rules predict for them."""
    escrow, chain, buyer = env.escrow, env.chain, env.buyer
    if case.ending == "refund":
        oid, order = placed[0]
        chain.travel_to(order.deadline + 1)
        return (
            escrow.refund(env.outsider, oid, order),
            placed,
            [rules.refund(rules.Terms.of(order))],
        )
    if case.ending == "prove":
        assert stock is not None
        oid, order = placed[0]
        order, proof = bad_code_proof(env, oid, order, stock)
        assert escrow.order_matches(oid, order)
        res = escrow._send(buyer, "proveBadCode", oid, order.as_tuple(), proof)
        return res, [(oid, order)], [rules.prove_bad_code(rules.Terms.of(order))]
    delivered, _ = escrow.deliver(
        env.supplier, [(oid, o, keccak(os.urandom(8))) for oid, o in placed]
    )
    placed = [(oid, o) for (oid, _), o in zip(placed, delivered, strict=True)]
    for oid, order in placed:
        assert escrow.order_matches(oid, order)
    if case.ending == "confirm":
        oid, order = placed[0]
        return escrow.confirm(buyer, oid, order), placed, [rules.complete(rules.Terms.of(order))]
    if case.ending == "settle":
        chain.travel_to(max(o.deadline for _, o in placed) + 1)
        res = escrow.settle(env.outsider, placed)
        return res, placed, [rules.complete(rules.Terms.of(o)) for _, o in placed]
    oid, order = placed[0]
    order, _ = escrow.dispute(buyer, oid, order, "ipfs://evidence", keccak(b"evidence"))
    assert escrow.order_matches(oid, order)
    terms = rules.Terms.of(order)
    if case.ending == "rule":
        res = escrow.rule(
            env.arbiter, oid, order, buyer_bps=case.buyer_bps, slash_bps=case.slash_bps
        )
        return res, [(oid, order)], [rules.resolve(terms, case.buyer_bps, case.slash_bps)]
    chain.travel_to(order.deadline + 1)
    res = escrow.resolve_timed_out(env.outsider, oid, order)
    return res, [(oid, order)], [rules.resolve_timed_out(terms)]


def run_case(env: Env, case: Case) -> None:
    """Play one example and check the contract against the rules at every step."""
    escrow = env.escrow
    token = ETH if case.token == "eth" else env.usdc.address
    first_block = env.chain.w3.eth.block_number + 1
    lid, stock = open_listing(env, case, token)
    shop = shop_owner(env, case).address
    accounts: dict[str, str] = {
        "buyer": env.buyer.address,
        "supplier": env.supplier.address,
        "reseller": env.reseller.address,
    }
    role: dict[str, str] = {address: name for name, address in accounts.items()}

    # buy: the order's terms, the bond reservation and the payment.
    placed: list[tuple[int, Order]] = []
    for quantity, resold, price in zip(case.quantities, case.resold, prices(case), strict=True):
        before = books(env, token, accounts)
        terms = rules.purchase(
            price, quantity, case.bond_bps, case.reseller_price if resold else None
        )
        oid, order, _ = escrow.buy(
            env.buyer,
            lid,
            quantity,
            max_unit_price=price,
            buyer_pubkey=PUBKEY,
            reseller=shop if resold else ZERO_ADDRESS,
            value=terms.amount if token == ETH else 0,
        )
        assert order.reseller == (shop if resold else ZERO_ADDRESS)
        assert (order.amount, order.bond, order.reseller_cut, order.fee_bps) == (
            terms.amount,
            terms.bond,
            terms.reseller_cut,
            case.fee_bps,
        )
        assert (terms.reseller_cut > 0) is (resold and case.reseller_price < case.unit_price)
        assert order.state == OrderState.PAID and escrow.order_matches(oid, order)
        assert books(env, token, accounts) == moved(
            before, bond_free=-terms.bond, bond_reserved=terms.bond, held=terms.amount
        )
        placed.append((oid, order))

    # the ending: every credit and bond move, the events' amounts, the stored hashes.
    before = books(env, token, accounts)
    res, ended, payouts = end_orders(env, case, placed, stock)
    # Credits by whoever receives them: the shop may be the buyer's or the supplier's own.
    credits = dict.fromkeys(accounts, 0)
    for (_, order), pay in zip(ended, payouts, strict=True):
        credits[role[order.buyer]] += pay.buyer_credit
        credits[role[order.supplier]] += pay.to_supplier
        if pay.commission:
            credits[role[order.reseller]] += pay.commission
    assert books(env, token, accounts) == moved(
        before,
        **credits,
        fees=sum(p.fee for p in payouts),
        bond_free=sum(p.bond_refreed for p in payouts),
        bond_reserved=-sum(p.bond_unreserved for p in payouts),
    )
    for (oid, order), pay in zip(ended, payouts, strict=True):
        # What leaves an order is its payment and its bond, less the bond returned.
        paid_out = pay.buyer_credit + pay.to_supplier + pay.fee + pay.commission
        assert paid_out == order.amount + pay.bond_unreserved - pay.bond_refreed
        assert escrow.order_hash(oid) == b"\0" * 32
        ending = next(e for e in res.events if e.args.get("orderId") == oid)
        assert rules.payout_for_event(ending.name, rules.Terms.of(order), ending.args) == pay
        if ending.name == "DisputeRuled":
            a = ending.args
            assert (a["buyerAmount"], a["supplierAmount"], a["slashed"]) == (
                pay.buyer_amount,
                pay.to_supplier,
                pay.slashed,
            )
        elif ending.name == "OrderRefunded":
            assert ending.args["amount"] == pay.buyer_amount

    # Every order rebuilt from its events (order_rules.order_changes) ends where the chain says.
    logs = env.chain.w3.eth.get_logs(
        {"address": escrow.address, "fromBlock": first_block, "toBlock": "latest"}
    )
    events = [e for e in (escrow.codec.decode_log(dict(log)) for log in logs) if e is not None]
    stamps = {n: escrow.block_timestamp(n) for n in {e.block_number for e in events}}
    rebuilt = rebuild_orders(events, stamps)
    final = {
        "confirm": OrderState.COMPLETED,
        "settle": OrderState.COMPLETED,
        "refund": OrderState.REFUNDED,
    }.get(case.ending, OrderState.RESOLVED)
    assert {oid: o.state for oid, o in rebuilt.items()} == {oid: final for oid, _ in placed}
    for oid, order in ended:
        assert rebuilt[oid].with_changes(state=order.state) == order


@settings(
    max_examples=int(os.environ.get("KAMENG_RULES_EXAMPLES", "35")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=cases())
def test_order_rules_agree_with_the_contract(base_env: Env, case: Case) -> None:
    env = base_env
    snapshot = env.chain.snapshot()
    env.reset()
    env.tx.fixed_gas = FIXED_GAS
    try:
        run_case(env, case)
    finally:
        env.chain.revert(snapshot)
        env.reset()


# ------------------------------------------------------------------ values by hand


def test_split_rounds_fee_and_commission_down_and_gives_the_rest_to_the_supplier() -> None:
    # fee 9,999 * 2% = 199.98 -> 199; the cut's share of it 3,333 * 2% = 66.66 -> 66, so the
    # commission is 3,333 - 66 = 3,267; the supplier 9,999 - 199 - 3,267 = 6,533.
    terms = rules.Terms(amount=9_999, bond=0, fee_bps=200, reseller_cut=3_333)
    assert rules.split_proceeds(9_999, terms) == rules.Split(6_533, 199, 3_267)
    # Without a reseller there is no commission: 9,999 - 199 to the supplier.
    plain = rules.Terms(amount=9_999, bond=0, fee_bps=200, reseller_cut=0)
    assert rules.split_proceeds(9_999, plain) == rules.Split(9_800, 199, 0)
    # A shop price of 1e16 over a reseller price of 7e15: the cut is 3e15, less 2% (6e13).
    pay = rules.complete(
        rules.Terms(amount=10**16, bond=10**15, fee_bps=200, reseller_cut=3 * 10**15)
    )
    assert (pay.to_supplier, pay.fee, pay.commission) == (686 * 10**13, 2 * 10**14, 294 * 10**13)
    assert pay.to_supplier == 7 * 10**15 - 7 * 10**15 * 200 // 10_000
    assert (pay.bond_unreserved, pay.bond_refreed, pay.buyer_credit) == (10**15, 10**15, 0)


def test_the_cut_scales_as_a_ruling_scales_the_payment() -> None:
    # Half of 1,000 to the sellers: fee 500 * 2% = 10; cut 333 * 500 / 1,000 = 166.5 -> 166,
    # less 166 * 2% = 3.32 -> 3: commission 163; the supplier 500 - 10 - 163 = 327.
    terms = rules.Terms(amount=1_000, bond=100, fee_bps=200, reseller_cut=333)
    assert rules.split_proceeds(500, terms) == rules.Split(327, 10, 163)
    ruled = rules.resolve(terms, buyer_bps=5_000, slash_bps=0)
    assert (ruled.buyer_amount, ruled.to_supplier, ruled.fee, ruled.commission) == (
        500,
        327,
        10,
        163,
    )
    assert rules.resolve_timed_out(terms) == ruled
    # Nothing left to the sellers, nothing to the reseller: a full refund by ruling or proof.
    assert rules.resolve(terms, buyer_bps=10_000, slash_bps=10_000).commission == 0
    assert rules.prove_bad_code(terms).commission == 0
    assert rules.refund(terms).commission == 0


def test_rulings_split_the_payment_and_slash_the_bond() -> None:
    terms = rules.Terms(amount=1_000, bond=101, fee_bps=200, reseller_cut=0)
    ruled = rules.resolve(terms, buyer_bps=3_000, slash_bps=5_000)
    assert (ruled.buyer_amount, ruled.slashed, ruled.buyer_credit) == (300, 50, 350)
    assert (ruled.to_supplier, ruled.fee, ruled.bond_refreed) == (686, 14, 51)
    timed_out = rules.resolve_timed_out(terms)
    assert (timed_out.buyer_amount, timed_out.slashed, timed_out.to_supplier) == (500, 0, 490)
    proved = rules.prove_bad_code(terms)
    assert (proved.buyer_credit, proved.to_supplier, proved.fee, proved.bond_refreed) == (
        1_101,
        0,
        0,
        0,
    )
    assert rules.refund(terms).buyer_credit == 1_000
    with pytest.raises(ValueError, match="buyer_bps"):
        rules.resolve(terms, buyer_bps=10_001, slash_bps=0)


def test_purchase_terms() -> None:
    assert rules.purchase(10**16, 3, 1_000) == rules.Purchase(3 * 10**16, 3 * 10**15, 0)
    # 3 at a shop price of 7 over a reseller price of 5: amount 21, bond 21 * 33.33% = 6.9993
    # -> 6, cut (7 - 5) * 3 = 6.
    assert rules.purchase(7, 3, 3_333, reseller_price=5) == rules.Purchase(21, 6, 6)
    assert rules.purchase(7, 3, 0, reseller_price=7) == rules.Purchase(21, 0, 0)
    with pytest.raises(ValueError, match="EscrowBelowResellerPrice"):
        rules.purchase(4, 1, 0, reseller_price=5)
    with pytest.raises(ValueError, match="EscrowAmountTooLarge"):
        rules.purchase(2**64, 2**32, 0)
    # The contract's order of checks: a listing closed to resellers first, then the reseller
    # price, then the amount.
    with pytest.raises(ValueError, match="EscrowNotDistributable"):
        rules.purchase(2**64, 2**32, 0, reseller_price=0)
    with pytest.raises(ValueError, match="EscrowBelowResellerPrice"):
        rules.purchase(2**64, 2**32, 0, reseller_price=2**65)


def test_order_changes_follow_each_event() -> None:
    digest = b"\1" * 32
    assert rules.order_changes("OrderDelivered", {"releaseDigest": digest}, 1_000, 60) == {
        "state": OrderState.DELIVERED,
        "deadline": 1_060,
        "release_digest": digest,
    }
    opened = rules.order_changes("DisputeOpened", {"arbitrationDeadline": 9}, None, 60)
    assert opened == {"state": OrderState.DISPUTED, "deadline": 9}
    assert rules.order_changes("EvidenceAdded", {}, None, 60) == {}
    assert rules.order_changes("DisputeRuled", {}, None, 60) == {"state": OrderState.RESOLVED}
    with pytest.raises(ValueError, match="timestamp"):
        rules.order_changes("OrderDelivered", {"releaseDigest": digest}, None, 60)
