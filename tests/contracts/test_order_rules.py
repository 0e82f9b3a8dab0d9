"""The order rules in Python (`contracts.order_rules`) agree with the deployed contract.

Hypothesis draws platform rates, a listing (price, bond rate, referral rate, token), an order
(quantity, with or without a referrer) and an ending: confirm, settle (of one or two orders in one
call), refund after the delivery deadline, a ruling with random shares, the arbitration timeout,
or a bad-code proof. Each example runs on one shared deployed escrow, reverted to a snapshot
afterwards, and compares every ledger entry the contract moved (balances, free and reserved
bond, platform fees, what the escrow holds), the amounts its events carry and the order hashes
it stores with what the rules predict.

About 35 examples run in 40 to 50 s; KAMENG_RULES_EXAMPLES=500 runs more. The unit tests at the
end pin a few values by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.world import demo_codes
from contracts import order_rules as rules
from contracts.client import EscrowConfig, rebuild_orders
from contracts.encoding import (
    ZERO_ADDRESS,
    Order,
    OrderState,
    commitment,
    element_leaf,
    keystream_xor,
    leaf,
    release_digest_v2,
)
from contracts.layout import escrow_struct
from contracts.merkle import MerkleTree
from tests.contracts.helpers import ETH, PUBKEY, Env

if TYPE_CHECKING:
    from contracts.client import TxResult

ENDINGS = ("confirm", "settle", "refund", "rule", "timeout", "prove")
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
    referral_cap: int  # the platform's referral cap
    referral_bps: int  # the listing's rate
    bond_bps: int
    referred: bool
    ending: str
    quantities: tuple[int, ...]
    unit_price: int
    buyer_bps: int
    slash_bps: int


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Rates within the contract's limits, an order that fits its ledgers, and an ending."""
    fee_bps = draw(st.integers(0, rules.MAX_FEES_BPS))
    referral_cap = draw(st.integers(0, rules.MAX_FEES_BPS - fee_bps))
    referral_bps = draw(st.integers(0, referral_cap))
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
    return Case(
        token=token,
        fee_bps=fee_bps,
        referral_cap=referral_cap,
        referral_bps=referral_bps,
        bond_bps=bond_bps,
        referred=draw(st.booleans()),
        ending=ending,
        quantities=quantities,
        unit_price=unit_price,
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


@dataclass
class Stock:
    """A listing's committed codes, when they are real (for bad-code proofs)."""

    codes: list[bytes]
    salts: list[bytes]
    tree: MerkleTree


def open_listing(env: Env, case: Case, token: str) -> tuple[int, Stock | None]:
    """Set the platform's rates, open a listing with the case's terms, stock and bond it."""
    escrow, supplier, admin = env.escrow, env.supplier, env.admin
    escrow.set_config(
        admin,
        EscrowConfig(
            fee_recipient=env.world.fee_recipient.address,
            fee_bps=case.fee_bps,
            referral_bps=case.referral_cap,
            min_bond_bps=0,
        ),
    )
    lid, _ = escrow.create_listing(
        supplier, sku=env.world.sku, unit_price=case.unit_price, token=token, bond_bps=case.bond_bps
    )
    if case.referral_bps:
        escrow.set_referral_bps(supplier, lid, case.referral_bps)
    stock = None
    total = sum(case.quantities)
    if case.ending == "prove":
        codes = demo_codes(total)
        salts = [os.urandom(32) for _ in codes]
        pairs = enumerate(zip(salts, codes, strict=True))
        tree = MerkleTree([leaf(i, commitment(salt, code)) for i, (salt, code) in pairs])
        escrow.commit_batch(supplier, lid, tree.root, total, 0)
        stock = Stock(codes, salts, tree)
    else:  # never opened: any nonzero root will do
        escrow.commit_batch(supplier, lid, keccak(os.urandom(32)), total, 0)
    amounts = [case.unit_price * q for q in case.quantities]
    bond = sum(a * case.bond_bps // rules.BPS for a in amounts)
    if token != ETH:
        usdc = env.usdc.functions
        env.send(env.admin, usdc.mint(env.buyer.address, sum(amounts)))
        if bond:
            env.send(env.admin, usdc.mint(supplier.address, bond))
    if bond:
        escrow.deposit_bond(supplier, bond, token)
    return lid, stock


def bad_code_proof(env: Env, oid: int, order: Order, stock: Stock) -> tuple[Order, Any]:
    """Deliver a v2 release whose first code is not the committed one; return the delivered
    order and a proof of it, built by field name from the ABI's BadCodeProof."""
    key, sealed_hash = os.urandom(32), keccak(b"sealed box")
    sent = [b"KMG-NOT-THE-COMMITTED-CODE", *stock.codes[1 : order.quantity]]
    cts = [keystream_xor(key, i, c) for i, c in enumerate(sent)]
    elements = MerkleTree([element_leaf(i, stock.salts[i], ct) for i, ct in enumerate(cts)])
    digest = release_digest_v2(sealed_hash, elements.root, key)
    (delivered,), _ = env.escrow.deliver(env.supplier, [(oid, order, digest)])
    proof = escrow_struct("BadCodeProof").as_tuple(
        {
            "sealed_hash": sealed_hash,
            "key": key,
            "index": 0,
            "salt": stock.salts[0],
            "ciphertext": cts[0],
            "element_proof": elements.proof(0),
            "batch_index": 0,
            "committed": commitment(stock.salts[0], stock.codes[0]),
            "leaf_proof": stock.tree.proof(0),
        }
    )
    return delivered, proof


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
    referrer = env.referrer.address if case.referred else ZERO_ADDRESS
    accounts = {
        "buyer": env.buyer.address,
        "supplier": env.supplier.address,
        "referrer": env.referrer.address,
    }

    # buy: the order's terms, the bond reservation and the payment.
    placed: list[tuple[int, Order]] = []
    for quantity in case.quantities:
        before = books(env, token, accounts)
        terms = rules.purchase(
            case.unit_price, quantity, case.bond_bps, case.referral_bps, referrer
        )
        oid, order, _ = escrow.buy(
            env.buyer,
            lid,
            quantity,
            max_unit_price=case.unit_price,
            buyer_pubkey=PUBKEY,
            referrer=referrer,
            value=terms.amount if token == ETH else 0,
        )
        assert (order.amount, order.bond, order.referral_bps, order.fee_bps) == (
            terms.amount,
            terms.bond,
            terms.referral_bps,
            case.fee_bps,
        )
        assert order.state == OrderState.PAID and escrow.order_matches(oid, order)
        assert books(env, token, accounts) == moved(
            before, bond_free=-terms.bond, bond_reserved=terms.bond, held=terms.amount
        )
        placed.append((oid, order))

    # the ending: every credit and bond move, the events' amounts, the stored hashes.
    before = books(env, token, accounts)
    res, ended, payouts = end_orders(env, case, placed, stock)
    assert books(env, token, accounts) == moved(
        before,
        buyer=sum(p.buyer_credit for p in payouts),
        supplier=sum(p.to_supplier for p in payouts),
        referrer=sum(p.commission for p in payouts),
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
    assert rules.split_proceeds(9_999, 200, 300) == rules.Split(9_501, 199, 299)
    pay = rules.complete(rules.Terms(amount=10**16, bond=10**15, fee_bps=200, referral_bps=300))
    assert (pay.to_supplier, pay.fee, pay.commission) == (95 * 10**14, 2 * 10**14, 3 * 10**14)
    assert (pay.bond_unreserved, pay.bond_refreed, pay.buyer_credit) == (10**15, 10**15, 0)


def test_rulings_split_the_payment_and_slash_the_bond() -> None:
    terms = rules.Terms(amount=1_000, bond=101, fee_bps=200, referral_bps=0)
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
    assert rules.purchase(10**16, 3, 1_000, 300, ZERO_ADDRESS) == rules.Purchase(
        3 * 10**16, 3 * 10**15, 0
    )
    assert rules.purchase(7, 3, 3_333, 300, "0x" + "11" * 20) == rules.Purchase(21, 6, 300)
    with pytest.raises(ValueError, match="EscrowAmountTooLarge"):
        rules.purchase(2**64, 2**32, 0, 0, ZERO_ADDRESS)


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
