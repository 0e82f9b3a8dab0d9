"""Disputes: opening, evidence (ERC-1497), rulings with slashing, and the timeout fallback."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from contracts.encoding import OrderState
from tests.contracts.helpers import (
    BPS,
    DIGEST,
    ETH,
    ETH_BOND,
    EVIDENCE_HASH,
    USDC_BOND,
    ZERO32,
    Env,
    assert_reverts,
    tx_time,
)

ARBITRATION_WINDOW = 7 * 24 * 3600


def test_buyer_opens_dispute_with_erc1497_events(env: Env) -> None:
    oid, order = env.delivered_order(quantity=2)
    disputed, res = env.escrow.dispute(env.buyer, oid, order, "ipfs://claim", EVIDENCE_HASH)
    ts = tx_time(env, res.block_number)
    assert disputed == order.with_changes(
        state=OrderState.DISPUTED, deadline=ts + ARBITRATION_WINDOW
    )
    assert disputed.release_digest == DIGEST  # the delivered digest stays bound to the order
    assert env.escrow.order_matches(oid, disputed)
    opened = res.event("DisputeOpened").args
    assert (opened["orderId"], opened["arbitrationDeadline"]) == (oid, ts + ARBITRATION_WINDOW)
    assert (opened["evidenceURI"], opened["evidenceHash"]) == ("ipfs://claim", EVIDENCE_HASH)
    d = res.event("Dispute").args
    assert d["_arbitrator"].lower() == env.escrow.address.lower()
    assert (d["_disputeID"], d["_metaEvidenceID"], d["_evidenceGroupID"]) == (
        oid,
        env.eth_listing,
        oid,
    )
    e = res.event("Evidence").args
    assert (e["_evidenceGroupID"], e["_party"].lower(), e["_evidence"]) == (
        oid,
        env.buyer.address.lower(),
        "ipfs://claim",
    )


@pytest.mark.parametrize("who", ["supplier", "outsider", "arbiter", "delivery_key"])
def test_dispute_by_anyone_but_the_buyer_reverts(env: Env, who: str) -> None:
    account: LocalAccount = getattr(env.world, who, None) or getattr(env, who)
    oid, order = env.delivered_order()
    assert_reverts(
        env,
        lambda: env.escrow.dispute(account, oid, order, "x", EVIDENCE_HASH),
        "EscrowWrongCaller",
        [account.address],
        orders=[oid],
    )


def test_dispute_before_delivery_reverts_wrong_state(env: Env) -> None:
    oid, order = env.buy()
    assert_reverts(
        env,
        lambda: env.escrow.dispute(env.buyer, oid, order, "x", EVIDENCE_HASH),
        "EscrowWrongState",
        [oid, OrderState.PAID],
        orders=[oid],
    )


def test_dispute_twice_reverts(env: Env) -> None:
    oid, order = env.delivered_order()
    disputed = env.dispute(oid, order)
    assert_reverts(
        env,
        lambda: env.escrow.dispute(env.buyer, oid, order, "x", EVIDENCE_HASH),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )
    assert_reverts(
        env,
        lambda: env.escrow.dispute(env.buyer, oid, disputed, "x", EVIDENCE_HASH),
        "EscrowWrongState",
        [oid, OrderState.DISPUTED],
        orders=[oid],
    )


def test_disputed_order_cannot_be_confirmed_or_settled(env: Env) -> None:
    oid, order = env.disputed_order()
    assert_reverts(
        env,
        lambda: env.escrow.confirm(env.buyer, oid, order),
        "EscrowWrongState",
        [oid, OrderState.DISPUTED],
        orders=[oid],
    )
    env.chain.travel_to(order.deadline + 1)
    assert_reverts(
        env,
        lambda: env.escrow.settle(env.outsider, [(oid, order)]),
        "EscrowWrongState",
        [oid, OrderState.DISPUTED],
        orders=[oid],
    )


@pytest.mark.parametrize("who", ["buyer", "supplier", "delivery_key"])
def test_parties_add_evidence(env: Env, who: str) -> None:
    account: LocalAccount = getattr(env.world, who, None) or getattr(env, who)
    oid, order = env.disputed_order()
    res = env.escrow.add_evidence(account, oid, order, f"ipfs://{who}", keccak(text=who))
    ev = res.event("EvidenceAdded").args
    assert (ev["orderId"], ev["party"].lower(), ev["uri"], ev["evidenceHash"]) == (
        oid,
        account.address.lower(),
        f"ipfs://{who}",
        keccak(text=who),
    )
    erc = res.event("Evidence").args
    assert (erc["_evidenceGroupID"], erc["_evidence"]) == (oid, f"ipfs://{who}")
    assert env.escrow.order_matches(oid, order)  # evidence does not change the order


@pytest.mark.parametrize("who", ["outsider", "arbiter", "reseller"])
def test_evidence_from_non_parties_reverts(env: Env, who: str) -> None:
    account: LocalAccount = getattr(env.world, who, None) or getattr(env, who)
    oid, order = env.disputed_order(reseller=env.reseller.address)
    assert_reverts(
        env,
        lambda: env.escrow.add_evidence(account, oid, order, "x", EVIDENCE_HASH),
        "EscrowWrongCaller",
        [account.address],
        orders=[oid],
    )


def test_evidence_on_undisputed_order_reverts_wrong_state(env: Env) -> None:
    oid, order = env.delivered_order()
    assert_reverts(
        env,
        lambda: env.escrow.add_evidence(env.buyer, oid, order, "x", EVIDENCE_HASH),
        "EscrowWrongState",
        [oid, OrderState.DELIVERED],
        orders=[oid],
    )


@pytest.mark.parametrize(
    ("buyer_bps", "slash_bps"),
    [(10_000, 10_000), (0, 0), (5_000, 2_500), (3_333, 10_000), (10_000, 0), (0, 10_000), (1, 1)],
)
@pytest.mark.parametrize("listing", ["eth", "usdc"])
def test_rule_credits_exactly_as_documented(
    env: Env, buyer_bps: int, slash_bps: int, listing: str
) -> None:
    lid = env.eth_listing if listing == "eth" else env.usdc_listing
    token = ETH if listing == "eth" else env.usdc.address
    bond_total = ETH_BOND if listing == "eth" else USDC_BOND
    escrow = env.escrow
    oid, order = env.disputed_order(lid, quantity=3, reseller=env.reseller.address)
    assert order.reseller_cut > 0
    fees_before = escrow.call("feesOf", token)
    reason = keccak(text="code-already-redeemed")
    bundle = keccak(b"bundle")
    res = escrow.rule(
        env.arbiter,
        oid,
        order,
        buyer_bps=buyer_bps,
        slash_bps=slash_bps,
        bundle_hash=bundle,
        reason=reason,
    )
    # NatSpec: buyerBps is the buyer's share of the payment; slashBps the share of the reserved
    # bond paid to the buyer. The sellers' share pays the fee; the reseller's cut is scaled as
    # that share is, less the fee on it; the supplier takes the rest (as on confirm).
    buyer_amount = order.amount * buyer_bps // BPS
    slashed = order.bond * slash_bps // BPS
    supplier_gross = order.amount - buyer_amount
    fee = supplier_gross * order.fee_bps // BPS
    cut = order.reseller_cut * supplier_gross // order.amount
    commission = cut - cut * order.fee_bps // BPS
    to_supplier = supplier_gross - fee - commission
    assert (commission > 0) is (buyer_bps < 10_000)
    assert escrow.balance_of(env.buyer.address, token) == buyer_amount + slashed
    assert escrow.balance_of(env.supplier.address, token) == to_supplier
    assert escrow.balance_of(env.reseller.address, token) == commission
    assert escrow.call("feesOf", token) == fees_before + fee
    assert escrow.bond_of(env.supplier.address, token) == (bond_total - slashed, 0)
    assert escrow.order_hash(oid) == ZERO32
    ev = res.event("DisputeRuled").args
    assert ev["arbiter"].lower() == env.arbiter.address.lower()
    assert (ev["orderId"], ev["buyerBps"], ev["slashBps"]) == (oid, buyer_bps, slash_bps)
    assert (ev["buyerAmount"], ev["supplierAmount"], ev["slashed"]) == (
        buyer_amount,
        to_supplier,
        slashed,
    )
    assert (ev["bundleHash"], ev["reason"]) == (bundle, reason)
    ruling = res.event("Ruling").args
    assert ruling["_arbitrator"].lower() == escrow.address.lower()
    assert (ruling["_disputeID"], ruling["_ruling"]) == (oid, buyer_bps)


def test_rule_by_non_arbiter_reverts_access_control(env: Env) -> None:
    oid, order = env.disputed_order()
    role = env.escrow.call("ARBITER_ROLE")
    for account in (env.outsider, env.supplier, env.buyer):
        assert_reverts(
            env,
            lambda account=account: env.escrow.rule(account, oid, order, buyer_bps=10_000),  # type: ignore[misc]
            "AccessControlUnauthorizedAccount",
            [account.address, role],
            orders=[oid],
        )


@pytest.mark.parametrize("party", ["buyer", "supplier", "delivery_key", "reseller"])
def test_arbiter_who_is_a_party_reverts(env: Env, party: str) -> None:
    account: LocalAccount = {
        "buyer": env.buyer,
        "supplier": env.supplier,
        "delivery_key": env.world.delivery_key,
        "reseller": env.reseller,
    }[party]
    env.escrow.grant_role(env.admin, "ARBITER_ROLE", account.address)
    # Every order here is sold in the reseller's shop: it is a party to each.
    oid, order = env.disputed_order(reseller=env.reseller.address)
    assert_reverts(
        env,
        lambda: env.escrow.rule(account, oid, order, buyer_bps=5_000),
        "EscrowArbiterIsParty",
        [account.address],
        orders=[oid],
    )
    # Another arbiter may rule on it.
    env.escrow.rule(env.arbiter, oid, order, buyer_bps=5_000)


@pytest.mark.parametrize(
    ("buyer_bps", "slash_bps", "bad"), [(10_001, 0, 10_001), (0, 65_535, 65_535)]
)
def test_rule_bps_above_10000_reverts(env: Env, buyer_bps: int, slash_bps: int, bad: int) -> None:
    oid, order = env.disputed_order()
    assert_reverts(
        env,
        lambda: env.escrow.rule(env.arbiter, oid, order, buyer_bps=buyer_bps, slash_bps=slash_bps),
        "EscrowBadBps",
        [bad],
        orders=[oid],
    )


def test_rule_on_undisputed_order_reverts_wrong_state(env: Env) -> None:
    oid, order = env.delivered_order()
    assert_reverts(
        env,
        lambda: env.escrow.rule(env.arbiter, oid, order, buyer_bps=0),
        "EscrowWrongState",
        [oid, OrderState.DELIVERED],
        orders=[oid],
    )


def test_rule_twice_or_with_tampered_order_reverts_unknown_order(env: Env) -> None:
    oid, order = env.disputed_order()
    assert_reverts(
        env,
        lambda: env.escrow.rule(env.arbiter, oid, order.with_changes(bond=0), buyer_bps=0),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )
    env.escrow.rule(env.arbiter, oid, order, buyer_bps=0)
    assert_reverts(
        env,
        lambda: env.escrow.rule(env.arbiter, oid, order, buyer_bps=10_000),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )


def test_timeout_fallback_splits_equally_and_frees_the_bond(env: Env) -> None:
    escrow, token = env.escrow, env.usdc.address
    oid, order = env.disputed_order(env.usdc_listing, quantity=3, reseller=env.reseller.address)
    env.chain.travel_to(order.deadline + 1)
    res = escrow.resolve_timed_out(env.outsider, oid, order)
    buyer_amount = order.amount // 2
    gross = order.amount - buyer_amount
    cut = order.reseller_cut * gross // order.amount
    fee, commission = gross * order.fee_bps // BPS, cut - cut * order.fee_bps // BPS
    assert commission > 0
    assert escrow.balance_of(env.buyer.address, token) == buyer_amount
    assert escrow.balance_of(env.supplier.address, token) == gross - fee - commission
    assert escrow.balance_of(env.reseller.address, token) == commission
    assert escrow.call("feesOf", token) == fee
    assert escrow.bond_of(env.supplier.address, token) == (USDC_BOND, 0)  # no slash
    ev = res.event("DisputeRuled").args
    assert ev["arbiter"].lower() == ETH
    assert (ev["buyerBps"], ev["slashBps"], ev["slashed"]) == (5_000, 0, 0)
    assert ev["reason"] == b"arbitration-timeout".ljust(32, b"\0")
    assert escrow.order_hash(oid) == ZERO32


def test_timeout_fallback_with_odd_amount_gives_the_odd_unit_to_the_supplier_side(
    env: Env,
) -> None:
    env.escrow.update_listing(env.supplier, env.usdc_listing, 1_000_001, True)
    oid, order = env.disputed_order(env.usdc_listing)
    env.chain.travel_to(order.deadline + 1)
    env.escrow.resolve_timed_out(env.outsider, oid, order)
    token = env.usdc.address
    assert env.escrow.balance_of(env.buyer.address, token) == 500_000
    paid_out = env.escrow.balance_of(env.supplier.address, token) + env.escrow.call("feesOf", token)
    assert paid_out == 500_001


def test_timeout_fallback_on_undisputed_or_finished_orders_reverts(env: Env) -> None:
    oid, order = env.delivered_order()
    env.chain.travel_to(order.deadline + 1)
    assert_reverts(
        env,
        lambda: env.escrow.resolve_timed_out(env.outsider, oid, order),
        "EscrowWrongState",
        [oid, OrderState.DELIVERED],
        orders=[oid],
    )
    oid2, order2 = env.disputed_order(buyer=env.world.buyers[1])
    env.escrow.rule(env.arbiter, oid2, order2, buyer_bps=10_000)
    env.chain.travel_to(order2.deadline + 1)
    assert_reverts(
        env,
        lambda: env.escrow.resolve_timed_out(env.outsider, oid2, order2),
        "EscrowUnknownOrder",
        [oid2],
        orders=[oid2],
    )


def test_arbiter_may_still_rule_after_the_deadline_until_the_fallback_is_applied(
    env: Env,
) -> None:
    oid, order = env.disputed_order()
    env.chain.travel_to(order.deadline + 1)
    env.escrow.rule(env.arbiter, oid, order, buyer_bps=10_000)
    assert env.escrow.balance_of(env.buyer.address) == order.amount
    assert_reverts(
        env,
        lambda: env.escrow.resolve_timed_out(env.outsider, oid, order),
        "EscrowUnknownOrder",
        [oid],
        orders=[oid],
    )
