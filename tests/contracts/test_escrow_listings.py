"""Listings: licensed-sku whitelist, creation, updates, closing, and committed code batches."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from bench.world import commit_codes, demo_codes
from contracts.client import TxResult
from contracts.encoding import commitment, leaf, sku_id
from contracts.merkle import MerkleTree, verify
from tests.contracts.helpers import (
    ETH,
    ETH_PRICE,
    ETH_RESELLER_PRICE,
    ETH_SHOP_PRICE,
    FEE_BPS,
    STOCK,
    ZERO32,
    Env,
    assert_reverts,
    config,
)

# getListing tuple positions
SUPPLIER, COMMITTED, SOLD, BOND_BPS, ACTIVE, TOKEN, PRICE = range(7)
DELIVERY_WINDOW, DISPUTE_WINDOW, BATCH_COUNT, LISTING_FEE = range(7, 11)
ARBITRATION_WINDOW, ON_CHAIN_FROM, TIERED, SKU = 11, 12, 13, 14
DAY = 86_400


def listing(env: Env, lid: int) -> tuple[object, ...]:
    """The raw getListing tuple."""
    return tuple(env.escrow.call("getListing", lid))


def create(env: Env, **kw: object) -> tuple[int, TxResult]:
    """createListing with defaults that succeed; returns (listing id, TxResult)."""
    args: dict[str, object] = {
        "sku": env.world.sku,
        "unit_price": ETH_PRICE,
        "token": ETH,
        "delivery_window": 600,
        "dispute_window": 7200,
        "bond_bps": 1500,
        "metadata_uri": "ipfs://terms",
    }
    args.update(kw)
    return env.escrow.create_listing(env.supplier, **args)  # type: ignore[arg-type]


def test_create_listing_stores_terms_and_emits_events(env: Env) -> None:
    count = env.escrow.call("listingCount")
    lid, res = create(env, token=env.usdc.address, unit_price=7 * 10**6)
    assert lid == count + 1 == env.escrow.call("listingCount")
    got = listing(env, lid)
    assert str(got[SUPPLIER]).lower() == env.supplier.address.lower()
    assert str(got[TOKEN]).lower() == env.usdc.address.lower()
    assert (got[COMMITTED], got[SOLD], got[BOND_BPS], got[ACTIVE], got[PRICE]) == (
        0,
        0,
        1500,
        True,
        7 * 10**6,
    )
    assert (got[DELIVERY_WINDOW], got[DISPUTE_WINDOW], got[BATCH_COUNT]) == (600, 7200, 0)
    assert len(got) == 15 and (got[LISTING_FEE], got[SKU]) == (FEE_BPS, env.world.sku)
    assert (got[ARBITRATION_WINDOW], got[ON_CHAIN_FROM]) == (7 * DAY, 0)
    # Resellers are the supplier's opt-in (audit finding 8): a new listing is closed to them.
    assert env.escrow.call("resellerPrice", lid) == 0
    ev = res.event("ListingCreated").args
    assert ev["listingId"] == lid and ev["sku"] == env.world.sku
    assert (ev["unitPrice"], ev["deliveryWindow"], ev["disputeWindow"], ev["bondBps"]) == (
        7 * 10**6,
        600,
        7200,
        1500,
    )
    assert (ev["feeBps"], ev["metadataURI"]) == (FEE_BPS, "ipfs://terms")
    assert "referralBps" not in ev
    assert ev["arbitrationWindow"] == 7 * DAY
    meta = res.event("MetaEvidence").args
    assert (meta["_metaEvidenceID"], meta["_evidence"]) == (lid, "ipfs://terms")


def test_create_listing_for_unauthorized_sku_reverts(env: Env) -> None:
    other = sku_id("pirated-course")
    assert_reverts(
        env,
        lambda: create(env, sku=other),
        "EscrowNotAuthorized",
        [env.supplier.address, other],
    )
    # An outsider may not list the supplier's authorized sku either.
    assert_reverts(
        env,
        lambda: env.escrow.create_listing(env.outsider, sku=env.world.sku, unit_price=1),
        "EscrowNotAuthorized",
        [env.outsider.address, env.world.sku],
    )


def test_create_listing_after_authorization_revoked_reverts(env: Env) -> None:
    env.escrow.authorize(env.admin, env.supplier.address, env.world.sku, ZERO32)
    assert env.escrow.call("authorization", env.supplier.address, env.world.sku) == ZERO32
    assert_reverts(
        env, lambda: create(env), "EscrowNotAuthorized", [env.supplier.address, env.world.sku]
    )


def test_create_listing_in_token_not_allowed_reverts(env: Env) -> None:
    stranger = env.buyer.address  # any address that was never allowed
    assert_reverts(env, lambda: create(env, token=stranger), "EscrowTokenNotAllowed", [stranger])


@pytest.mark.parametrize(
    ("field", "value", "error", "args"),
    [
        ("unit_price", 0, "EscrowBadArgument", ["unitPrice"]),
        # Audit finding 4: both windows lie within the configured bounds.
        ("delivery_window", 0, "EscrowBadWindow", ["deliveryWindow", 0, 60, 30 * DAY]),
        ("delivery_window", 59, "EscrowBadWindow", ["deliveryWindow", 59, 60, 30 * DAY]),
        (
            "delivery_window",
            30 * DAY + 1,
            "EscrowBadWindow",
            ["deliveryWindow", 30 * DAY + 1, 60, 30 * DAY],
        ),
        ("dispute_window", 0, "EscrowBadWindow", ["disputeWindow", 0, 3600, 90 * DAY]),
        ("dispute_window", 1, "EscrowBadWindow", ["disputeWindow", 1, 3600, 90 * DAY]),
        (
            "dispute_window",
            90 * DAY + 1,
            "EscrowBadWindow",
            ["disputeWindow", 90 * DAY + 1, 3600, 90 * DAY],
        ),
        ("bond_bps", 999, "EscrowBadBps", [999]),
        ("bond_bps", 10_001, "EscrowBadBps", [10_001]),
    ],
)
def test_create_listing_bad_terms_revert(
    env: Env, field: str, value: int, error: str, args: list[object]
) -> None:
    assert_reverts(env, lambda: create(env, **{field: value}), error, args)


def test_bond_bps_at_the_minimum_and_at_full_are_accepted(env: Env) -> None:
    low, _ = create(env, bond_bps=1000)
    high, _ = create(env, bond_bps=10_000)
    assert listing(env, low)[BOND_BPS] == 1000
    assert listing(env, high)[BOND_BPS] == 10_000


def test_update_listing_changes_price_activity_and_fee_terms(env: Env) -> None:
    lid = env.eth_listing
    cfg = env.escrow.call("config")
    env.escrow.set_config(env.admin, config(env, fee_bps=100))
    assert tuple(env.escrow.call("config")) != tuple(cfg)
    assert listing(env, lid)[LISTING_FEE] == FEE_BPS  # unchanged until the listing is updated
    res = env.escrow.update_listing(env.supplier, lid, 2 * ETH_PRICE, True)
    got = listing(env, lid)
    assert (got[PRICE], got[ACTIVE], got[LISTING_FEE]) == (2 * ETH_PRICE, True, 100)
    ev = res.event("ListingUpdated").args
    assert dict(ev) == {"listingId": lid, "unitPrice": 2 * ETH_PRICE, "active": True, "feeBps": 100}
    # Re-pricing the listing leaves its reseller price and the shops' prices as they were.
    assert env.escrow.call("resellerPrice", lid) == ETH_RESELLER_PRICE
    assert env.escrow.call("shopPrice", env.reseller.address, lid) == ETH_SHOP_PRICE
    env.escrow.update_listing(env.supplier, lid, 2 * ETH_PRICE, False)
    assert listing(env, lid)[ACTIVE] is False


def test_update_listing_bad_inputs_revert(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    assert_reverts(
        env,
        lambda: escrow.update_listing(env.outsider, lid, ETH_PRICE, True),
        "EscrowWrongCaller",
        [env.outsider.address],
    )
    assert_reverts(
        env,
        lambda: escrow.update_listing(env.supplier, 999, ETH_PRICE, True),
        "EscrowUnknownListing",
        [999],
    )
    assert_reverts(
        env,
        lambda: escrow.update_listing(env.supplier, lid, 0, True),
        "EscrowBadArgument",
        ["unitPrice"],
    )


def test_reactivating_after_revocation_reverts_but_closing_works(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    escrow.authorize(env.admin, env.supplier.address, env.world.sku, ZERO32)
    assert_reverts(
        env,
        lambda: escrow.update_listing(env.supplier, lid, ETH_PRICE, True),
        "EscrowNotAuthorized",
        [env.supplier.address, env.world.sku],
    )
    escrow.update_listing(env.supplier, lid, ETH_PRICE, False)
    assert listing(env, lid)[ACTIVE] is False


def test_close_listing_by_rights_admin_stops_orders(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    res = escrow.close_listing(env.admin, lid)
    ev = res.event("ListingUpdated").args
    assert (ev["listingId"], ev["active"]) == (lid, False)
    assert listing(env, lid)[ACTIVE] is False
    assert_reverts(env, lambda: env.buy(lid), "EscrowListingInactive", [lid])


def test_close_listing_needs_rights_admin_and_a_listing(env: Env) -> None:
    role = env.escrow.call("RIGHTS_ADMIN_ROLE")
    assert_reverts(
        env,
        lambda: env.escrow.close_listing(env.arbiter, env.eth_listing),
        "AccessControlUnauthorizedAccount",
        [env.arbiter.address, role],
    )
    assert_reverts(
        env, lambda: env.escrow.close_listing(env.admin, 77), "EscrowUnknownListing", [77]
    )


def test_commit_batch_appends_contiguous_index_ranges(env: Env) -> None:
    lid, _ = create(env)
    codes = demo_codes(5)
    salts, tree = commit_codes(env.world, lid, codes)
    assert env.escrow.batch(lid, 0) == (tree.root, 0, 5)
    more = demo_codes(3, start=5)
    salts2, tree2 = commit_codes(env.world, lid, more, first_index=5)
    assert env.escrow.batch(lid, 1) == (tree2.root, 5, 3)
    got = listing(env, lid)
    assert (got[COMMITTED], got[BATCH_COUNT]) == (8, 2)
    # Each leaf binds (index, salted commitment) and is provable against its batch root.
    for pos, (salt, code) in enumerate(zip(salts2, more, strict=True)):
        node = leaf(5 + pos, commitment(salt, code))
        assert verify(tree2.proof(pos), tree2.root, node)


def test_commit_batch_emits_batch_committed(env: Env) -> None:
    lid = env.eth_listing
    root = MerkleTree([keccak(b"a"), keccak(b"b")]).root
    res = env.escrow.commit_batch(env.supplier, lid, root, 2)
    ev = res.event("BatchCommitted").args
    assert (ev["listingId"], ev["batchIndex"], ev["root"]) == (lid, 1, root)
    assert (ev["firstIndex"], ev["count"], ev["committed"]) == (STOCK, 2, STOCK + 2)


def test_commit_batch_bad_inputs_revert(env: Env) -> None:
    escrow, lid, root = env.escrow, env.eth_listing, keccak(b"root")
    assert_reverts(
        env,
        lambda: escrow.commit_batch(env.outsider, lid, root, 1),
        "EscrowWrongCaller",
        [env.outsider.address],
    )
    assert_reverts(
        env,
        lambda: escrow.commit_batch(env.supplier, 5_000, root, 1),
        "EscrowUnknownListing",
        [5_000],
    )
    assert_reverts(
        env,
        lambda: escrow.commit_batch(env.supplier, lid, ZERO32, 1),
        "EscrowBadArgument",
        ["root"],
    )
    assert_reverts(
        env,
        lambda: escrow.commit_batch(env.supplier, lid, root, 0),
        "EscrowBadArgument",
        ["count"],
    )


def test_commit_batch_built_for_other_indexes_reverts(env: Env) -> None:
    """A batch whose leaves were built for indexes that another batch took can never land."""
    escrow, lid, root = env.escrow, env.eth_listing, keccak(b"root")
    for stale in (0, STOCK - 1, STOCK + 1):
        assert_reverts(
            env,
            lambda stale=stale: escrow.commit_batch(env.supplier, lid, root, 1, stale),  # type: ignore[misc]
            "EscrowBatchOutOfOrder",
            [lid, stale, STOCK],
        )
    escrow.commit_batch(env.supplier, lid, root, 1, STOCK)
    assert escrow.batch(lid, 1) == (root, STOCK, 1)


def test_commit_batch_after_revocation_reverts(env: Env) -> None:
    env.escrow.authorize(env.admin, env.supplier.address, env.world.sku, ZERO32)
    assert_reverts(
        env,
        lambda: env.escrow.commit_batch(env.supplier, env.eth_listing, keccak(b"r"), 1),
        "EscrowNotAuthorized",
        [env.supplier.address, env.world.sku],
    )


def test_revoked_sku_keeps_selling_until_the_rights_admin_closes_the_listing(env: Env) -> None:
    """Revoking is two steps by design: buy() does not re-check the whitelist (gas), so the
    rights admin revokes the authorization and closes the listing; the supplier cannot reopen."""
    escrow, lid = env.escrow, env.eth_listing
    escrow.authorize(env.admin, env.supplier.address, env.world.sku, ZERO32)
    env.buy()
    escrow.close_listing(env.admin, lid)
    assert_reverts(env, lambda: env.buy(), "EscrowListingInactive", [lid])
    assert_reverts(
        env,
        lambda: escrow.update_listing(env.supplier, lid, ETH_PRICE, True),
        "EscrowNotAuthorized",
        [env.supplier.address, env.world.sku],
    )


def test_closed_listing_of_an_authorized_supplier_can_be_reopened(env: Env) -> None:
    escrow, lid = env.escrow, env.eth_listing
    escrow.close_listing(env.admin, lid)
    escrow.update_listing(env.supplier, lid, ETH_PRICE, True)
    env.buy()
