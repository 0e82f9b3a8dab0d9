"""Money conservation and event sourcing over a mixed scenario in ETH and USDC.

At every checkpoint the escrow holds exactly what it owes: every ledger balance, every free and
reserved bond, the platform's fees and the amounts of the orders still open. Afterwards, every
order rebuilt from events alone hashes to what the contract stores.
"""

from __future__ import annotations

from eth_utils import keccak

from contracts.client import rebuild_orders
from contracts.encoding import Order, OrderState
from tests.contracts.helpers import ETH, ZERO32, Env


def check(env: Env, open_orders: dict[str, tuple[int, Order]]) -> None:
    """Holdings equal liabilities in both tokens."""
    for token in (ETH, env.usdc.address):
        assert env.held(token) == env.liabilities(token, open_orders.values()), token


def test_mixed_scenario_conserves_money_and_rebuilds_from_events(env: Env) -> None:
    escrow, usdc = env.escrow, env.usdc_listing
    b1, b2, b3 = env.world.buyers
    ref = env.reseller.address
    first_block = env.chain.w3.eth.block_number + 1
    check(env, {})

    o: dict[str, tuple[int, Order]] = {
        "A": env.buy(buyer=b1, quantity=2, reseller=ref),
        "B": env.buy(usdc, buyer=b2, quantity=3),
        "C": env.buy(buyer=b3),
        "D": env.buy(buyer=b2, quantity=4, reseller=ref),
        "E": env.buy(usdc, buyer=b3, reseller=ref),
        "F": env.buy(buyer=b1),
        "G": env.buy(usdc, buyer=b1, quantity=5),
        "H": env.buy(buyer=b3, quantity=2),
    }
    check(env, o)

    items = [(o[k][0], o[k][1], keccak(text=k)) for k in "ABDEGH"]
    delivered, _ = escrow.deliver(env.world.delivery_key, items)
    for k, order in zip("ABDEGH", delivered, strict=True):
        o[k] = (o[k][0], order)
    check(env, o)

    escrow.confirm(b1, *o.pop("A"))
    for k, buyer in (("D", b2), ("E", b3), ("H", b3)):
        o[k] = (o[k][0], env.dispute(*o[k], buyer=buyer))
    escrow.add_evidence(env.supplier, *o["D"], "ipfs://reply", keccak(b"reply"))
    escrow.rule(env.arbiter, *o.pop("D"), buyer_bps=3_000, slash_bps=5_000)
    check(env, o)

    env.chain.travel_to(o["C"][1].deadline + 1)
    escrow.refund(b3, *o.pop("C"))
    escrow.withdraw(b3)
    check(env, o)

    env.chain.travel_to(o["B"][1].deadline + 1)
    escrow.settle(env.outsider, [o.pop("B")])
    escrow.withdraw(env.supplier, env.usdc.address)
    escrow.withdraw(env.reseller)
    env.withdraw_fees(ETH, env.world.fee_recipient.address)
    check(env, o)

    env.chain.travel_to(o["E"][1].deadline + 1)
    escrow.resolve_timed_out(env.outsider, *o.pop("E"))
    escrow.withdraw_bond(env.supplier, escrow.bond_of(env.supplier.address)[0])
    check(env, o)
    assert sorted(o) == ["F", "G", "H"]

    # Rebuild every order from the escrow's events alone.
    logs = env.chain.w3.eth.get_logs(
        {"address": escrow.address, "fromBlock": first_block, "toBlock": "latest"}
    )
    events = [e for e in (escrow.codec.decode_log(dict(log)) for log in logs) if e is not None]
    stamps = {n: escrow.block_timestamp(n) for n in {e.block_number for e in events}}
    rebuilt = rebuild_orders(events, stamps)
    assert len(rebuilt) == 8
    finished = {OrderState.COMPLETED, OrderState.REFUNDED, OrderState.RESOLVED}
    for oid, order in rebuilt.items():
        stored = escrow.order_hash(oid)
        if order.state in finished:
            assert stored == ZERO32
        else:
            assert stored == order.hash()
    assert {rebuilt[oid].state for oid, _ in o.values()} == {
        OrderState.PAID,
        OrderState.DELIVERED,
        OrderState.DISPUTED,
    }
    assert sum(1 for r in rebuilt.values() if r.state == OrderState.RESOLVED) == 2
