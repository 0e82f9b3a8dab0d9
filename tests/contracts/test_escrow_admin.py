"""Administration: deployment, roles, platform settings, token allow-list, sku whitelist, fees."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from contracts.client import EscrowClient, EscrowConfig, deploy_contract
from tests.contracts.helpers import (
    ETH,
    ETH_PRICE,
    FEE_BPS,
    ZERO32,
    Env,
    assert_reverts,
    catch_revert,
    config,
    expect_args,
    revert_args,
)

HOUR = 3600
DAY = 86_400

ROLES = ["DEFAULT_ADMIN_ROLE", "RIGHTS_ADMIN_ROLE", "ARBITER_ROLE", "PAUSER_ROLE"]


def test_deployer_admin_holds_every_role_and_arbiter_only_its_own(env: Env) -> None:
    escrow = env.escrow
    for role in ROLES:
        role_id = escrow.call(role)
        assert escrow.call("hasRole", role_id, env.admin.address) is True
        assert escrow.call("hasRole", role_id, env.arbiter.address) is (role == "ARBITER_ROLE")
    cfg = escrow.call("config")
    assert tuple(cfg) == EscrowConfig(fee_recipient=env.world.fee_recipient.address).as_tuple()
    assert tuple(cfg)[:4] == (env.world.fee_recipient.address, FEE_BPS, 1000, 604_800)
    assert escrow.call("listingCount") == 2


def test_deploy_with_zero_admin_reverts(env: Env) -> None:
    bad = EscrowConfig(fee_recipient=env.world.fee_recipient.address)
    err = catch_revert(
        lambda: deploy_contract(env.chain, env.outsider, "CodeEscrow", ETH, bad.as_tuple())
    )
    # OpenZeppelin's AccessControlDefaultAdminRules refuses a zero admin before our checks run.
    assert err.name == "AccessControlInvalidDefaultAdmin" and revert_args(err) == expect_args(ETH)


def test_deploy_with_bad_config_reverts(env: Env) -> None:
    bad = EscrowConfig(fee_recipient=env.world.fee_recipient.address, fee_bps=6_000)
    err = catch_revert(lambda: EscrowClient.deploy(env.chain, env.outsider, bad))
    assert err.name == "EscrowBadBps" and revert_args(err) == (6_000,)


def test_set_config_updates_and_emits(env: Env) -> None:
    new = EscrowConfig(
        fee_recipient=env.outsider.address,
        fee_bps=4_000,
        min_bond_bps=0,
        arbitration_window=3600,
        min_delivery_window=120,
        max_delivery_window=7200,
        min_dispute_window=7200,
        max_dispute_window=86_400,
    )
    res = env.escrow.set_config(env.admin, new)
    assert tuple(env.escrow.call("config")) == new.as_tuple()
    assert tuple(res.event("ConfigUpdated").args["config"]) == tuple(
        v.lower() if isinstance(v, str) else v for v in new.as_tuple()
    )
    # A zero minimum bond lets listings ask for no bond at all.
    lid, _ = env.escrow.create_listing(
        env.supplier, sku=env.world.sku, unit_price=ETH_PRICE, bond_bps=0
    )
    env.escrow.commit_batch(env.supplier, lid, keccak(b"r"), 1)
    _, order = env.buy(lid)
    assert order.bond == 0 and order.fee_bps == 4_000


@pytest.mark.parametrize(
    ("changes", "error", "args"),
    [
        ({"fee_bps": 10_001}, "EscrowBadBps", [10_001]),
        # The fee alone is capped at half a payment now that no referral rate shares the cap.
        ({"fee_bps": 5_001}, "EscrowBadBps", [5_001]),
        ({"min_bond_bps": 10_001}, "EscrowBadBps", [10_001]),
        # Audit finding 5: the arbitration window is bounded (1 hour to 90 days).
        ({"arbitration_window": 0}, "EscrowBadWindow", ["arbitrationWindow", 0, HOUR, 90 * DAY]),
        (
            {"arbitration_window": 90 * DAY + 1},
            "EscrowBadWindow",
            ["arbitrationWindow", 90 * DAY + 1, HOUR, 90 * DAY],
        ),
        # Audit finding 4: the bounds of listing windows are themselves bounded.
        ({"min_delivery_window": 59}, "EscrowBadWindow", ["minDeliveryWindow", 59, 60, 365 * DAY]),
        (
            {"min_delivery_window": 600, "max_delivery_window": 599},
            "EscrowBadWindow",
            ["maxDeliveryWindow", 599, 600, 365 * DAY],
        ),
        ({"min_dispute_window": 60}, "EscrowBadWindow", ["minDisputeWindow", 60, HOUR, 365 * DAY]),
        (
            {"max_dispute_window": 365 * DAY + 1},
            "EscrowBadWindow",
            ["maxDisputeWindow", 365 * DAY + 1, HOUR, 365 * DAY],
        ),
    ],
)
def test_set_config_bad_values_revert(
    env: Env, changes: dict[str, int], error: str, args: list[object]
) -> None:
    assert_reverts(
        env, lambda: env.escrow.set_config(env.admin, config(env, **changes)), error, args
    )


def test_set_config_fee_at_the_cap_is_accepted(env: Env) -> None:
    env.escrow.set_config(env.admin, config(env, fee_bps=5_000))
    assert tuple(env.escrow.call("config"))[1] == 5_000


def test_set_config_zero_fee_recipient_and_non_admin_revert(env: Env) -> None:
    zero = EscrowConfig(fee_recipient=ETH)
    assert_reverts(
        env, lambda: env.escrow.set_config(env.admin, zero), "EscrowBadArgument", ["feeRecipient"]
    )
    role = env.escrow.call("DEFAULT_ADMIN_ROLE")
    assert_reverts(
        env,
        lambda: env.escrow.set_config(env.arbiter, config(env)),
        "AccessControlUnauthorizedAccount",
        [env.arbiter.address, role],
    )


def test_set_token_allowed(env: Env) -> None:
    token = env.outsider.address
    res = env.escrow.set_token_allowed(env.admin, token, True)
    ev = res.event("TokenAllowed").args
    assert (ev["token"].lower(), ev["allowed"]) == (token.lower(), True)
    env.escrow.create_listing(env.supplier, sku=env.world.sku, unit_price=1, token=token)
    env.escrow.set_token_allowed(env.admin, token, False)
    assert_reverts(
        env,
        lambda: env.escrow.create_listing(
            env.supplier, sku=env.world.sku, unit_price=1, token=token
        ),
        "EscrowTokenNotAllowed",
        [token],
    )


def test_set_token_allowed_bad_inputs_revert(env: Env) -> None:
    assert_reverts(
        env,
        lambda: env.escrow.set_token_allowed(env.admin, ETH, False),
        "EscrowBadArgument",
        ["token"],
    )
    role = env.escrow.call("DEFAULT_ADMIN_ROLE")
    assert_reverts(
        env,
        lambda: env.escrow.set_token_allowed(env.supplier, env.usdc.address, False),
        "AccessControlUnauthorizedAccount",
        [env.supplier.address, role],
    )


def test_disallowing_a_token_keeps_existing_listings_trading(env: Env) -> None:
    env.escrow.set_token_allowed(env.admin, env.usdc.address, False)
    oid, order = env.buy(env.usdc_listing)
    env.escrow.confirm(env.buyer, oid, env.deliver(oid, order))
    env.escrow.withdraw(env.supplier, env.usdc.address)


def test_authorize_grants_and_revokes_with_events(env: Env) -> None:
    sku, attestation = keccak(text="office-365-e3"), keccak(text="Microsoft CSP agreement")
    res = env.escrow.authorize(env.admin, env.outsider.address, sku, attestation)
    ev = res.event("SkuAuthorized").args
    assert (ev["supplier"].lower(), ev["sku"], ev["attestationHash"]) == (
        env.outsider.address.lower(),
        sku,
        attestation,
    )
    assert bytes(env.escrow.call("authorization", env.outsider.address, sku)) == attestation
    lid, _ = env.escrow.create_listing(env.outsider, sku=sku, unit_price=1)
    assert lid == 3
    env.escrow.authorize(env.admin, env.outsider.address, sku, ZERO32)
    assert bytes(env.escrow.call("authorization", env.outsider.address, sku)) == ZERO32


def test_authorize_bad_inputs_and_wrong_role_revert(env: Env) -> None:
    sku = keccak(text="x")
    assert_reverts(
        env,
        lambda: env.escrow.authorize(env.admin, ETH, sku, sku),
        "EscrowBadArgument",
        ["supplier"],
    )
    assert_reverts(
        env,
        lambda: env.escrow.authorize(env.admin, env.outsider.address, ZERO32, sku),
        "EscrowBadArgument",
        ["sku"],
    )
    role = env.escrow.call("RIGHTS_ADMIN_ROLE")
    for account in (env.arbiter, env.supplier):
        assert_reverts(
            env,
            lambda account=account: env.escrow.authorize(account, account.address, sku, sku),  # type: ignore[misc]
            "AccessControlUnauthorizedAccount",
            [account.address, role],
        )


def test_a_separate_rights_admin_can_whitelist(env: Env) -> None:
    env.escrow.grant_role(env.admin, "RIGHTS_ADMIN_ROLE", env.outsider.address)
    sku = keccak(text="game-cards")
    env.escrow.authorize(env.outsider, env.supplier.address, sku, keccak(b"att"))
    env.escrow.create_listing(env.supplier, sku=sku, unit_price=1)


def test_withdraw_fees(env: Env) -> None:
    oid, order = env.delivered_order(quantity=10)
    env.escrow.confirm(env.buyer, oid, order)
    fees = env.escrow.call("feesOf", ETH)
    assert fees == 10 * ETH_PRICE * FEE_BPS // 10_000
    before = env.held(ETH, env.world.fee_recipient.address)
    receipt = env.withdraw_fees(ETH, env.world.fee_recipient.address)
    ev = env.escrow.result(receipt).event("FeesWithdrawn").args
    assert (ev["token"].lower(), ev["amount"]) == (ETH, fees)
    assert env.held(ETH, env.world.fee_recipient.address) == before + fees
    assert env.escrow.call("feesOf", ETH) == 0
    assert_reverts(
        env,
        lambda: env.withdraw_fees(ETH, env.world.fee_recipient.address),
        "EscrowNothingToWithdraw",
        [env.escrow.address, ETH],
    )


def test_withdraw_fees_bad_inputs_revert(env: Env) -> None:
    oid, order = env.delivered_order()
    env.escrow.confirm(env.buyer, oid, order)
    assert_reverts(env, lambda: env.withdraw_fees(ETH, ETH), "EscrowBadArgument", ["to"])
    role = env.escrow.call("DEFAULT_ADMIN_ROLE")
    call = env.escrow.contract.functions.withdrawFees(ETH, env.arbiter.address)
    assert_reverts(
        env,
        lambda: env.tx.send(env.arbiter, call),
        "AccessControlUnauthorizedAccount",
        [env.arbiter.address, role],
    )


def test_withdraw_with_nothing_owed_reverts(env: Env) -> None:
    for token in (ETH, env.usdc.address):
        assert_reverts(
            env,
            lambda token=token: env.escrow.withdraw(env.outsider, token),  # type: ignore[misc]
            "EscrowNothingToWithdraw",
            [env.outsider.address, token],
        )
