"""Delivery transactions that do not mine, on anvil with mining by hand, against SQLite and
PostgreSQL. The agent sends through its chain gateway, so each delivery is one ``deliver``
intent (one ``chain_txs`` row) whose every signed hash is kept.

- Blocks too full to take it (the block gas limit is lowered under the transaction's gas): after
  `delivery_bump_blocks` blocks it is replaced by the same call, same nonce, at least +25% fees.
- The base fee jumps past its fee: anvil evicts it from the pool; after `delivery_bump_blocks`
  blocks it goes out again, same call and nonce, priced from the new base fee.
- A fee cap is respected (nothing above it is ever signed; deliveries wait, said once, while the
  base fee is above it); a crash between storing a replacement and broadcasting it loses
  nothing, whichever of the two transactions mines.

In every case the buyer gets exactly one OrderDelivered, with the stored release's digest.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from bench.world import World, make_world
from contracts.chain import Chain
from tests.backend.engine_delivery import (
    Bought,
    Crash,
    DeliverTx,
    assert_delivered_once,
    buy,
    crash_at,
    deliver_txs,
    delivered_events,
    release_states,
)
from tests.backend.engine_helpers import engine_settings, stock_listing

pytestmark = pytest.mark.anvil

BUMP_BLOCKS = 2
#: anvil's default block gas limit, restored after blocks made too small.
BLOCK_GAS_LIMIT = 30_000_000
GWEI = 10**9


def only_tx(sessions: sessionmaker[Session]) -> DeliverTx:
    """The one ``deliver`` intent there is."""
    [tx] = deliver_txs(sessions)
    return tx


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
    tx = only_tx(sessions)
    assert tx.state == "sent" and tx.max_fee is not None and len(tx.hashes) == 1
    assert pool_size(anvil) == 1
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
    first = only_tx(sessions)
    hold_in_pool(anvil, BUMP_BLOCKS - 1)
    agent.run_once()
    assert only_tx(sessions).hashes == first.hashes  # not waited long enough yet
    hold_in_pool(anvil, 1)
    agent.run_once()
    replaced = only_tx(sessions)
    assert replaced.state == "sent" and replaced.nonce == first.nonce
    assert replaced.hashes == [*first.hashes, replaced.tx_hash]  # both kept, the new one last
    assert first.max_fee is not None and replaced.max_fee is not None
    assert replaced.max_fee >= first.max_fee * 125 // 100
    assert pool_size(anvil) == 1  # the replacement took the original's place
    assert release_states(sessions) == {orders[0].oid: "sent"}
    mine(anvil)
    agent.run_once()
    mined = only_tx(sessions)
    assert mined.state == "mined" and mined.tx_hash == replaced.tx_hash
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_a_delivery_evicted_by_a_base_fee_jump_goes_out_again_at_the_new_price(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    first = only_tx(sessions)
    assert first.max_fee is not None
    set_base_fee(anvil, first.max_fee * 10)
    mine(anvil)
    assert pool_size(anvil) == 0  # anvil evicts what the base fee prices out
    for _ in range(BUMP_BLOCKS - 1):
        agent.run_once()
        assert only_tx(sessions).hashes == first.hashes  # waits `delivery_bump_blocks` blocks
        mine(anvil)
    agent.run_once()  # sent again: the same call and nonce, priced from the new base fee
    again = only_tx(sessions)
    assert again.state == "sent" and again.nonce == first.nonce and len(again.hashes) == 2
    assert again.max_fee is not None and again.max_fee > first.max_fee * 8
    assert pool_size(anvil) == 1
    mine(anvil)
    agent.run_once()
    assert only_tx(sessions).state == "mined"
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_no_delivery_above_the_gas_price_cap(
    anvil: Chain, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS)
    world, agent, orders = post_one(anvil, sessions, settings)
    first = only_tx(sessions)
    assert first.max_fee is not None
    cap = first.max_fee * 2
    capped = engine_settings(
        delivery_bump_blocks=BUMP_BLOCKS,
        delivery_max_gas_price=cap,
        master_key=settings.master_key.get_secret_value(),
        fingerprint_key=settings.fingerprint_key.get_secret_value(),
    )
    agent = DeliveryAgent(capped, sessions, world.escrow, world.delivery_key)
    set_base_fee(anvil, first.max_fee * 10)
    mine(anvil)
    assert pool_size(anvil) == 0  # evicted
    # The base fee stays above the cap for these blocks (an empty block lowers it by 1/8): the
    # gateway replaces the evicted transaction at the cap, and no further.
    with caplog.at_level(logging.WARNING, logger="backend.delivery.agent"):
        for _ in range(BUMP_BLOCKS + 1):
            agent.run_once()
            mine(anvil)
    assert caplog.text.count("KAMENG_DELIVERY_MAX_GAS_PRICE") == 1  # said once, not every pass
    waiting = only_tx(sessions)
    assert waiting.state == "sent" and waiting.nonce == first.nonce
    assert waiting.max_fee == cap and len(waiting.hashes) == 2
    assert release_states(sessions) == {orders[0].oid: "sent"}
    assert delivered_events(world.escrow) == {}
    # The fee comes back down: the order goes out under the cap and mines.
    set_base_fee(anvil, 1)
    for _ in range(2 * BUMP_BLOCKS):
        mine(anvil)
        agent.run_once()
        if only_tx(sessions).state == "mined":
            break
    mined = only_tx(sessions)
    assert mined.state == "mined" and mined.nonce == first.nonce
    assert mined.max_fee is not None and mined.max_fee <= cap
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_new_deliveries_wait_while_the_base_fee_is_above_the_cap(
    anvil: Chain, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    cap = 10 * GWEI
    settings = engine_settings(delivery_bump_blocks=BUMP_BLOCKS, delivery_max_gas_price=cap)
    world = make_world(anvil)
    stocked = stock_listing(world, sessions, settings, count=5)
    orders = [buy(world.escrow, world.buyers[0], stocked.listing_id, 2)]
    anvil.make_request("evm_setAutomine", [False])
    set_base_fee(anvil, 10 * cap)
    mine(anvil)
    agent = DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)
    with caplog.at_level(logging.WARNING, logger="backend.delivery.agent"):
        assert agent.run_once() == [orders[0].oid]  # sealed and stored all the same
        mine(anvil)
        agent.run_once()
    assert caplog.text.count("KAMENG_DELIVERY_MAX_GAS_PRICE") == 1
    assert release_states(sessions) == {orders[0].oid: "prepared"}
    assert deliver_txs(sessions) == [] and pool_size(anvil) == 0  # nothing signed
    set_base_fee(anvil, GWEI)
    mine(anvil)
    agent.run_once()  # under the cap now: queued, signed, sent
    sent = only_tx(sessions)
    assert sent.state == "sent" and sent.max_fee is not None and sent.max_fee <= cap
    mine(anvil)
    agent.run_once()
    assert only_tx(sessions).state == "mined"
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
    stored = only_tx(sessions)
    assert stored.state == "signed" and len(stored.hashes) == 2
    original, replacement = stored.hashes
    assert pool_size(anvil) == 1  # only the original is out there
    if winner == "original":
        mine(anvil)
        assert pool_size(anvil) == 0
    restarted = DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)
    restarted.recover()
    if winner == "replacement":
        assert only_tx(sessions).state == "sent" and pool_size(anvil) == 1
        mine(anvil)
    restarted.run_once()
    final = only_tx(sessions)
    assert final.state == "mined" and final.nonce == stored.nonce
    assert final.tx_hash == (replacement if winner == "replacement" else original)
    assert release_states(sessions) == {orders[0].oid: "confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)
