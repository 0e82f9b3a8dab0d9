"""Delivery transactions that do not mine, on anvil with mining by hand, against SQLite and
PostgreSQL.

- Blocks too full to take it (the block gas limit is lowered under the transaction's gas): after
  `delivery_bump_blocks` blocks it is replaced by the same call, same nonce, at least +25% gas
  price.
- The base fee jumps past its gas price: anvil evicts it from the pool; the stored bytes are
  refused on re-send, so its orders go out again in a new transaction at the new price.
- A gas-price cap is respected; a crash between storing a replacement and broadcasting it loses
  nothing, whichever of the two transactions mines.

In every case the buyer gets exactly one OrderDelivered, with the stored release's digest.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from backend.models import DeliveryTx
from contracts.chain import Chain
from contracts.testing import World, make_world
from tests.backend.engine_delivery import (
    Bought,
    Crash,
    assert_delivered_once,
    buy,
    crash_at,
    release_states,
)
from tests.backend.engine_helpers import engine_settings, stock_listing

pytestmark = pytest.mark.anvil

BUMP_BLOCKS = 2
#: anvil's default block gas limit, restored after blocks made too small.
BLOCK_GAS_LIMIT = 30_000_000


def txs(sessions: sessionmaker[Session]) -> list[tuple[str, int, int | None, int | None]]:
    """(state, nonce, gas price, replaces id) of every stored delivery tx, oldest first."""
    with sessions() as session:
        rows = session.execute(select(DeliveryTx).order_by(DeliveryTx.id)).scalars().all()
        return [(t.state, t.nonce, t.gas_price, t.replaces_id) for t in rows]


def mine(chain: Chain, blocks: int = 1) -> None:
    for _ in range(blocks):
        chain.make_request("evm_mine", [])


def set_base_fee(chain: Chain, wei: int) -> None:
    """The next block's base fee (later blocks move from it by the usual 1/8 at most)."""
    chain.make_request("anvil_setNextBlockBaseFeePerGas", [hex(wei)])


def pool_size(chain: Chain) -> int:
    status = chain.make_request("txpool_status", [])
    return int(status["pending"], 16) + int(status["queued"], 16)


def post_one(
    anvil: Chain, sessions: sessionmaker[Session], settings: Settings, quantity: int = 2
) -> tuple[World, DeliveryAgent, list[Bought]]:
    """One paid order, sealed and its delivery tx sent to the pool of a node that mines by hand."""
    world = make_world(anvil)
    stocked = stock_listing(world, sessions, settings, count=5)
    orders = [buy(world.escrow, world.buyers[0], stocked.listing_id, quantity)]
    anvil.make_request("evm_setAutomine", [False])
    agent = DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)
    assert agent.run_once() == [orders[0].oid]
    [(state, _, price, _)] = txs(sessions)
    assert state == "broadcast" and price is not None and pool_size(anvil) == 1
    return world, agent, orders


def hold_in_pool(anvil: Chain, blocks: int) -> None:
    """Mine `blocks` blocks too small for any delivery tx, which stays waiting in the pool."""
    anvil.make_request("evm_setBlockGasLimit", [hex(60_000)])
    mine(anvil, blocks)
    assert pool_size(anvil) == 1
    anvil.make_request("evm_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])


def test_a_delivery_waiting_in_the_pool_is_replaced_at_a_higher_price(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    hold_in_pool(anvil, BUMP_BLOCKS - 1)
    agent.run_once()
    assert [t[0] for t in txs(sessions)] == ["broadcast"]  # not waited long enough yet
    hold_in_pool(anvil, 1)
    agent.run_once()
    (old_state, nonce, old_price, _), (new_state, new_nonce, new_price, replaces) = txs(sessions)
    assert (old_state, new_state) == ("replaced", "broadcast")
    assert new_nonce == nonce and replaces is not None
    assert old_price is not None and new_price is not None
    assert new_price >= old_price * 125 // 100
    assert pool_size(anvil) == 1  # the replacement took the original's place
    assert release_states(sessions) == {orders[0].oid: "sent"}
    mine(anvil)
    agent.run_once()
    assert [t[0] for t in txs(sessions)] == ["replaced", "mined"]
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_a_delivery_evicted_by_a_base_fee_jump_goes_out_again_at_the_new_price(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    [(_, nonce, price, _)] = txs(sessions)
    assert price is not None
    set_base_fee(anvil, price * 10)
    mine(anvil)
    assert pool_size(anvil) == 0  # anvil evicts what the base fee prices out
    agent.run_once()  # the stored bytes are refused: dropped, re-prepared, posted anew
    (old_state, _, _, _), (new_state, new_nonce, new_price, _) = txs(sessions)
    assert (old_state, new_state) == ("dropped", "broadcast")
    assert new_nonce == nonce and new_price is not None and new_price > price * 8
    mine(anvil)
    agent.run_once()
    assert [t[0] for t in txs(sessions)] == ["dropped", "mined"]
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_no_delivery_above_the_gas_price_cap(
    anvil: Chain, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    [(_, _, price, _)] = txs(sessions)
    assert price is not None
    capped = engine_settings(
        delivery_bump_blocks=BUMP_BLOCKS,
        delivery_max_gas_price=price * 2,
        master_key=settings.master_key.get_secret_value(),
        fingerprint_key=settings.fingerprint_key.get_secret_value(),
    )
    agent = DeliveryAgent(capped, sessions, world.escrow, world.delivery_key)
    set_base_fee(anvil, price * 10)
    mine(anvil)
    with caplog.at_level(logging.WARNING, logger="backend.delivery.agent"):
        agent.run_once()  # evicted, re-prepared, but today's price is above the cap
        agent.run_once()
    assert caplog.text.count("KAMENG_DELIVERY_MAX_GAS_PRICE") == 1  # said once, not every pass
    assert [t[0] for t in txs(sessions)] == ["dropped"]
    assert release_states(sessions) == {orders[0].oid: "prepared"}
    assert pool_size(anvil) == 0
    # The fee comes back down: the order goes out under the cap and mines.
    set_base_fee(anvil, 1)
    mine(anvil)
    agent.run_once()
    mine(anvil)
    agent.run_once()
    states = txs(sessions)
    assert [t[0] for t in states] == ["dropped", "mined"]
    assert states[1][2] is not None and states[1][2] <= price * 2
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


@pytest.mark.parametrize("winner", ["replacement", "original"])
def test_crash_after_storing_a_replacement_loses_nothing(
    anvil: Chain, sessions: sessionmaker[Session], winner: str
) -> None:
    """Killed after the replacement is stored, before it is broadcast. Then either the stored
    replacement is sent on restart and mines, or the original mines first and the replacement
    can never mine: both end with the order delivered once, with our digest."""
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    hold_in_pool(anvil, BUMP_BLOCKS)
    agent.crash_hook = crash_at("bump-stored")
    with pytest.raises(Crash):
        agent.run_once()
    assert [t[0] for t in txs(sessions)] == ["replaced", "signed"]
    assert pool_size(anvil) == 1  # only the original is out there
    if winner == "original":
        mine(anvil)
        assert pool_size(anvil) == 0
    restarted = DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)
    restarted.recover()
    if winner == "replacement":
        assert [t[0] for t in txs(sessions)] == ["replaced", "broadcast"]
        mine(anvil)
    restarted.run_once()
    final = [t[0] for t in txs(sessions)]
    assert final == (["replaced", "mined"] if winner == "replacement" else ["replaced", "dropped"])
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)
