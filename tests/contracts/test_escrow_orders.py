"""The order passed back in calldata: every step refuses a struct that is not the stored one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_abi import encode
from eth_utils import keccak
from web3.types import TxParams

from contracts.encoding import ORDER_ABI_TYPE, Order, OrderState
from tests.contracts.helpers import (
    DIGEST,
    EVIDENCE_HASH,
    Env,
    assert_reverts,
    catch_revert,
    next_tx_at,
)

Step = Callable[[Env, int, Order], object]

#: Each step with the state its order must be in and whether it waits for the deadline.
STEPS: dict[str, tuple[OrderState, bool, Step]] = {
    "deliver": (
        OrderState.PAID,
        False,
        lambda env, oid, o: env.escrow.deliver(env.supplier, [(oid, o, DIGEST)]),
    ),
    "refund": (OrderState.PAID, True, lambda env, oid, o: env.escrow.refund(env.buyer, oid, o)),
    "confirm": (
        OrderState.DELIVERED,
        False,
        lambda env, oid, o: env.escrow.confirm(env.buyer, oid, o),
    ),
    "dispute": (
        OrderState.DELIVERED,
        False,
        lambda env, oid, o: env.escrow.dispute(env.buyer, oid, o, "x", EVIDENCE_HASH),
    ),
    "settle": (
        OrderState.DELIVERED,
        True,
        lambda env, oid, o: env.escrow.settle(env.outsider, [(oid, o)]),
    ),
    "add_evidence": (
        OrderState.DISPUTED,
        False,
        lambda env, oid, o: env.escrow.add_evidence(env.buyer, oid, o, "x", EVIDENCE_HASH),
    ),
    "rule": (
        OrderState.DISPUTED,
        False,
        lambda env, oid, o: env.escrow.rule(env.arbiter, oid, o, buyer_bps=5_000),
    ),
    "resolve_timed_out": (
        OrderState.DISPUTED,
        True,
        lambda env, oid, o: env.escrow.resolve_timed_out(env.outsider, oid, o),
    ),
}


def order_in(env: Env, state: OrderState, wait: bool) -> tuple[int, Order]:
    """An order in `state`; past its deadline if the step waits for it."""
    if state == OrderState.PAID:
        oid, order = env.buy(quantity=2, reseller=env.reseller.address)
    elif state == OrderState.DELIVERED:
        oid, order = env.delivered_order(quantity=2, reseller=env.reseller.address)
    else:
        oid, order = env.disputed_order(quantity=2, reseller=env.reseller.address)
    if wait:
        next_tx_at(env.chain, order.deadline + 1)
    return oid, order


@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_refuses_a_tampered_order(env: Env, step: str) -> None:
    state, wait, action = STEPS[step]
    oid, order = order_in(env, state, wait)
    for forged in (
        order.with_changes(amount=order.amount - 1),
        order.with_changes(reseller=env.outsider.address),
        order.with_changes(reseller_cut=order.reseller_cut + 1),
        order.with_changes(deadline=order.deadline + 10**6),
        order.with_changes(state=OrderState(state % 3 + 1)),
    ):
        assert_reverts(
            env,
            lambda forged=forged: action(env, oid, forged),  # type: ignore[misc]
            "EscrowUnknownOrder",
            [oid],
            orders=[oid],
            mined=False,
        )
    # Under another id the genuine struct is unknown too.
    assert_reverts(
        env, lambda: action(env, oid + 1, order), "EscrowUnknownOrder", [oid + 1], orders=[oid]
    )
    # And the genuine one goes through.
    action(env, oid, order)


@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_refuses_an_order_in_the_wrong_state(env: Env, step: str) -> None:
    state, _, action = STEPS[step]
    other = OrderState.DELIVERED if state != OrderState.DELIVERED else OrderState.PAID
    oid, order = order_in(env, other, True)
    assert_reverts(
        env, lambda: action(env, oid, order), "EscrowWrongState", [oid, other], orders=[oid]
    )


@pytest.mark.parametrize(
    ("field", "word"), [("buyer", 1), ("quantity", 7), ("reseller_cut", 9), ("state", 12)]
)
def test_non_canonical_encoding_of_the_genuine_order_is_refused(
    env: Env, field: str, word: int
) -> None:
    """Dirty high bits decode to the same values but hash differently: the order is unknown."""
    oid, order = env.delivered_order()
    selector = keccak(text=f"confirm(uint256,{ORDER_ABI_TYPE})")[:4]
    args = bytearray(encode(["uint256", ORDER_ABI_TYPE], [oid, order.as_tuple()]))

    def call() -> bytes:
        tx: TxParams = {"from": env.buyer.address, "to": env.escrow.address}
        tx["data"] = bytes(selector + args)
        return bytes(env.chain.w3.eth.call(tx))

    # The canonical encoding is accepted ...
    call()
    # ... the same values with a dirty top byte are not.
    args[32 * word] |= 0x80
    err = catch_revert(call)
    assert (err.name, err.args_) == ("EscrowUnknownOrder", (oid,)), field
    assert env.escrow.order_matches(oid, order)
