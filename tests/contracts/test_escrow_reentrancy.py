"""Re-entrancy: an attacker contract re-enters withdraw and settle from its receive hook."""

from __future__ import annotations

from eth_utils import to_checksum_address
from web3.contract import Contract

from contracts.artifacts import load
from contracts.client import deploy_contract, error_codec, order_from_paid_event
from contracts.encoding import Order
from tests.contracts.helpers import ETH, ETH_PRICE, PUBKEY, Env

NONE, WITHDRAW, SETTLE = 0, 1, 2


def deploy_attacker(env: Env) -> Contract:
    """Deploy ReentrantAttacker against the escrow."""
    address, _ = deploy_contract(env.chain, env.outsider, "ReentrantAttacker", env.escrow.address)
    env.tx.reset_nonce(env.outsider.address)
    env.extra_accounts.append(address)
    abi = load("ReentrantAttacker").abi
    return env.chain.w3.eth.contract(address=to_checksum_address(address), abi=abi)


def attacker_buys_and_is_refunded(env: Env, attacker: Contract) -> tuple[int, Order]:
    """The attacker buys one code, nothing is delivered, and the refund credits it."""
    receipt = env.send(
        env.outsider, attacker.functions.buy(env.eth_listing, PUBKEY), value=ETH_PRICE
    )
    paid = env.escrow.result(receipt).event("OrderPaid")
    oid, order = int(paid.args["orderId"]), order_from_paid_event(paid.args)
    assert order.buyer == attacker.address
    env.chain.travel_to(order.deadline + 1)
    env.escrow.refund(env.outsider, oid, order)
    assert env.escrow.balance_of(attacker.address) == ETH_PRICE
    return oid, order


def last_error(attacker: Contract) -> str:
    """The name of the error the attacker's re-entry met."""
    data = bytes(attacker.functions.lastError().call())
    decoded = error_codec().decode_error(data)
    assert decoded is not None, f"undecodable revert data {data.hex()}"
    return decoded.name


def test_attacker_without_reentry_withdraws_normally(env: Env) -> None:
    attacker = deploy_attacker(env)
    attacker_buys_and_is_refunded(env, attacker)
    env.send(env.outsider, attacker.functions.withdraw())
    assert env.held(ETH, attacker.address) == ETH_PRICE
    assert env.escrow.balance_of(attacker.address) == 0


def test_reentering_withdraw_fails_and_pays_once(env: Env) -> None:
    attacker = deploy_attacker(env)
    # Other money in the escrow that a double payout would take.
    open_orders = [env.buy(quantity=3), env.buy(buyer=env.world.buyers[1], quantity=2)]
    attacker_buys_and_is_refunded(env, attacker)
    env.send(env.outsider, attacker.functions.setMode(WITHDRAW))
    held = env.held(ETH)
    env.send(env.outsider, attacker.functions.withdraw())
    assert attacker.functions.reentered().call() is False
    assert last_error(attacker) == "ReentrancyGuardReentrantCall"
    assert env.held(ETH, attacker.address) == ETH_PRICE
    assert env.held(ETH) == held - ETH_PRICE
    assert env.escrow.balance_of(attacker.address) == 0
    assert env.held(ETH) == env.liabilities(ETH, open_orders)


def test_reentering_settle_fails_and_the_order_settles_once_later(env: Env) -> None:
    attacker = deploy_attacker(env)
    target = env.delivered_order(buyer=env.world.buyers[1], quantity=2)
    attacker_buys_and_is_refunded(env, attacker)
    env.chain.travel_to(target[1].deadline + 1)
    env.send(env.outsider, attacker.functions.setSettleTarget(target[0], target[1].as_tuple()))
    env.send(env.outsider, attacker.functions.setMode(SETTLE))
    env.send(env.outsider, attacker.functions.withdraw())
    assert attacker.functions.reentered().call() is False
    assert last_error(attacker) == "ReentrancyGuardReentrantCall"
    assert env.escrow.order_matches(*target)  # untouched by the re-entry
    assert env.escrow.balance_of(env.supplier.address) == 0
    assert env.held(ETH, attacker.address) == ETH_PRICE
    assert env.held(ETH) == env.liabilities(ETH, [target])
    env.escrow.settle(env.outsider, [target])
    amount = target[1].amount
    assert env.escrow.balance_of(env.supplier.address) == amount - amount * 200 // 10_000
    assert env.held(ETH) == env.liabilities(ETH, [])
