"""Deadlines to the second: each step 1 s before, exactly at and 1 s after its deadline.

Deliver and dispute are allowed while block.timestamp <= deadline; refund, settle and the
timeout fallback only once block.timestamp > deadline. Every transaction here is checked to
have been mined at exactly the intended timestamp.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contracts.client import TxResult
from contracts.encoding import OrderState
from tests.contracts.helpers import DIGEST, EVIDENCE_HASH, ZERO32, Env, assert_reverts, next_tx_at

OFFSETS = [-1, 0, 1]


def run_at(
    env: Env,
    oid: int,
    deadline: int,
    offset: int,
    action: Callable[[], TxResult],
    allowed: Callable[[int], bool],
    error: str,
) -> TxResult | None:
    """Run `action` in a transaction at deadline + offset; expect success iff allowed(offset)."""
    next_tx_at(env.chain, deadline + offset)
    if allowed(offset):
        res = action()
        assert env.escrow.block_timestamp(res.block_number) == deadline + offset
        return res
    assert_reverts(env, action, error, [oid, deadline], orders=[oid])
    return None


def until_deadline(offset: int) -> bool:
    return offset <= 0


def after_deadline(offset: int) -> bool:
    return offset > 0


@pytest.mark.parametrize("offset", OFFSETS)
def test_deliver_until_the_delivery_deadline(env: Env, offset: int) -> None:
    oid, order = env.buy()
    res = run_at(
        env,
        oid,
        order.deadline,
        offset,
        lambda: env.escrow.deliver(env.supplier, [(oid, order, DIGEST)])[1],
        until_deadline,
        "EscrowDeadlinePassed",
    )
    if res is not None:
        delivered = order.with_changes(
            state=OrderState.DELIVERED,
            deadline=order.deadline + offset + order.dispute_window,
            release_digest=DIGEST,
        )
        assert env.escrow.order_matches(oid, delivered)


@pytest.mark.parametrize("offset", OFFSETS)
def test_refund_only_after_the_delivery_deadline(env: Env, offset: int) -> None:
    oid, order = env.buy()
    res = run_at(
        env,
        oid,
        order.deadline,
        offset,
        lambda: env.escrow.refund(env.buyer, oid, order),
        after_deadline,
        "EscrowDeadlineNotReached",
    )
    if res is not None:
        assert env.escrow.order_hash(oid) == ZERO32
        assert env.escrow.balance_of(env.buyer.address) == order.amount
    else:
        assert env.escrow.order_matches(oid, order)


def test_delivery_and_refund_deadlines_leave_no_gap(env: Env) -> None:
    """At the deadline only delivery works; one second later only the refund does."""
    oid, order = env.buy()
    snapshot = env.chain.snapshot()
    next_tx_at(env.chain, order.deadline)
    assert_reverts(
        env,
        lambda: env.escrow.refund(env.buyer, oid, order),
        "EscrowDeadlineNotReached",
        [oid, order.deadline],
        mined=False,
    )
    env.deliver(oid, order)
    env.chain.revert(snapshot)
    env.reset()
    next_tx_at(env.chain, order.deadline + 1)
    assert_reverts(
        env,
        lambda: env.escrow.deliver(env.supplier, [(oid, order, DIGEST)]),
        "EscrowDeadlinePassed",
        [oid, order.deadline],
        mined=False,
    )
    env.escrow.refund(env.buyer, oid, order)


@pytest.mark.parametrize("offset", OFFSETS)
def test_dispute_until_the_end_of_the_dispute_window(env: Env, offset: int) -> None:
    oid, order = env.delivered_order()
    res = run_at(
        env,
        oid,
        order.deadline,
        offset,
        lambda: env.escrow.dispute(env.buyer, oid, order, "ipfs://e", EVIDENCE_HASH)[1],
        until_deadline,
        "EscrowDeadlinePassed",
    )
    if res is not None:
        arbitration_deadline = res.event("DisputeOpened").args["arbitrationDeadline"]
        assert arbitration_deadline == order.deadline + offset + 7 * 24 * 3600


@pytest.mark.parametrize("offset", OFFSETS)
def test_settle_only_after_the_dispute_window(env: Env, offset: int) -> None:
    oid, order = env.delivered_order()
    res = run_at(
        env,
        oid,
        order.deadline,
        offset,
        lambda: env.escrow.settle(env.outsider, [(oid, order)]),
        after_deadline,
        "EscrowDeadlineNotReached",
    )
    if res is not None:
        assert env.escrow.order_hash(oid) == ZERO32
        assert env.escrow.balance_of(env.supplier.address) > 0


@pytest.mark.parametrize("offset", OFFSETS)
def test_timeout_fallback_only_after_the_arbitration_deadline(env: Env, offset: int) -> None:
    oid, order = env.disputed_order()
    res = run_at(
        env,
        oid,
        order.deadline,
        offset,
        lambda: env.escrow.resolve_timed_out(env.outsider, oid, order),
        after_deadline,
        "EscrowDeadlineNotReached",
    )
    if res is not None:
        assert env.escrow.balance_of(env.buyer.address) == order.amount // 2
    else:
        # Before the fallback applies, the arbiter can still rule.
        env.escrow.rule(env.arbiter, oid, order, buyer_bps=10_000)
        assert env.escrow.balance_of(env.buyer.address) == order.amount


def test_settle_batch_with_one_order_still_in_its_window_reverts_whole_batch(env: Env) -> None:
    first = env.delivered_order()
    second = env.delivered_order(buyer=env.world.buyers[1])
    assert second[1].deadline > first[1].deadline
    next_tx_at(env.chain, second[1].deadline)
    assert_reverts(
        env,
        lambda: env.escrow.settle(env.outsider, [first, second]),
        "EscrowDeadlineNotReached",
        [second[0], second[1].deadline],
        orders=[first[0], second[0]],
    )
    env.escrow.settle(env.outsider, [first, second])
