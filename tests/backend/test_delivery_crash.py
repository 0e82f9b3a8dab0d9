"""A delivery agent that dies at any step restarts into a consistent state: no order is sealed or
delivered twice, none is skipped, and a re-post carries the same bytes (in-process crashes at
each named point; tests/integration/test_delivery_sigkill.py does it with a real SIGKILL).

The points: the agent's own ``prepared`` (releases sealed and stored), ``enqueued`` (the
``deliver`` intent queued with the gateway, its releases sent) and ``reconciled`` (an outcome
applied); the gateway's ``signed``, ``sent`` and ``replaced``, which the agent reports as
``tx-stored`` (signed bytes stored, not broadcast), ``broadcast`` and ``bump-stored`` (the
last one needs a transaction stuck in a pool: test_delivery_gas_bump.py, on anvil)."""

from __future__ import annotations

import contextlib

import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from bench.world import World
from tests.backend.engine_delivery import (
    Bought,
    Crash,
    assert_delivered_once,
    buy,
    crash_at,
    deliver_txs,
    release_states,
    sealed_bytes,
)
from tests.backend.engine_helpers import stock_listing


def new_agent(world: World, sessions: sessionmaker[Session], settings: Settings) -> DeliveryAgent:
    return DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)


def tx_rows(sessions: sessionmaker[Session]) -> list[tuple[str | None, str, int]]:
    """(hash, state, order count) of every ``deliver`` intent, oldest first."""
    return [(t.tx_hash, t.state, t.order_count) for t in deliver_txs(sessions)]


def _orders(world: World, listing_id: int) -> list[Bought]:
    return [
        buy(world.escrow, b, listing_id, q) for b, q in zip(world.buyers, [1, 3, 2], strict=True)
    ]


@pytest.mark.parametrize("point", ["prepared", "enqueued", "tx-stored", "broadcast"])
def test_restart_after_a_crash_delivers_each_order_once_with_the_same_bytes(
    world: World, sessions: sessionmaker[Session], settings: Settings, point: str
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    orders = _orders(world, stocked.listing_id)
    dying = new_agent(world, sessions, settings)
    dying.crash_hook = crash_at(point)
    with pytest.raises(Crash):
        dying.run_once()
    before = sealed_bytes(sessions)
    assert set(before) == {b.oid for b in orders}
    txs_before = tx_rows(sessions)

    new_agent(world, sessions, settings).drain()

    assert sealed_bytes(sessions) == before  # never re-sealed
    assert_delivered_once(world.escrow, sessions, orders)
    txs = tx_rows(sessions)
    assert [(s, n) for _, s, n in txs] == [("mined", len(orders))]
    if point == "enqueued":
        # Queued before the crash, signed and sent after it: one intent, not a second one.
        assert [(h, s) for h, s, _ in txs_before] == [(None, "queued")]
    elif point != "prepared":
        # The transaction signed before the crash is the one that mined, re-sent if needed.
        assert txs_before[0][0] is not None and txs[0][0] == txs_before[0][0]


def test_crash_during_recovery_is_recovered_too(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    orders = _orders(world, stocked.listing_id)
    first = new_agent(world, sessions, settings)
    first.crash_hook = crash_at("tx-stored")
    with pytest.raises(Crash):
        first.run_once()
    second = new_agent(world, sessions, settings)
    second.crash_hook = crash_at("reconciled")
    with pytest.raises(Crash):
        second.run_once()
    new_agent(world, sessions, settings).drain()
    assert_delivered_once(world.escrow, sessions, orders)


def _burn_nonce(world: World, account: LocalAccount, nonce: int) -> None:
    """Spend `nonce` of `account` on a plain transfer, as another program using the key would."""
    w3 = world.chain.w3
    tx = {
        "to": account.address,
        "value": 0,
        "gas": 21_000,
        "gasPrice": world.escrow.tx.gas_price(),
        "nonce": nonce,
        "chainId": world.chain.chain_id,
    }
    w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def test_stored_tx_whose_nonce_was_taken_is_replaced_with_the_same_digests(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    orders = _orders(world, stocked.listing_id)
    dying = new_agent(world, sessions, settings)
    dying.crash_hook = crash_at("tx-stored")
    with pytest.raises(Crash):
        dying.run_once()
    [stored] = deliver_txs(sessions)
    assert stored.state == "signed" and stored.nonce is not None
    nonce = stored.nonce
    _burn_nonce(world, world.delivery_key, nonce)
    before = sealed_bytes(sessions)

    new_agent(world, sessions, settings).drain()

    assert sealed_bytes(sessions) == before
    assert [s for _, s, _ in tx_rows(sessions)] == ["dropped", "mined"]
    assert_delivered_once(world.escrow, sessions, orders)


def test_repeated_crashes_at_every_point_never_double_deliver(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=50)
    orders: list[Bought] = []
    points = ["prepared", "enqueued", "tx-stored", "broadcast", "reconciled"]
    for round_, point in enumerate(points * 2):
        orders += [buy(world.escrow, world.buyers[round_ % 3], stocked.listing_id, 2)]
        agent = new_agent(world, sessions, settings)
        agent.crash_hook = crash_at(point)
        with contextlib.suppress(Crash):
            agent.drain()
    new_agent(world, sessions, settings).drain()
    assert set(release_states(sessions).values()) == {"confirmed"}
    assert_delivered_once(world.escrow, sessions, orders)


def test_a_batch_queued_before_a_crash_is_estimated_again_after_it(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """The gateway signs a queued delivery with the gas its dry run estimated, but not after a
    crash: the chain may have moved on, and the batch is run again before anything is signed."""
    from sqlalchemy import select

    from backend.gateway.models import ChainTx

    stocked = stock_listing(world, sessions, settings, count=10)
    orders = _orders(world, stocked.listing_id)
    dying = new_agent(world, sessions, settings)
    dying.crash_hook = crash_at("enqueued")
    with pytest.raises(Crash):
        dying.run_once()
    with sessions() as session:
        (queued,) = session.scalars(select(ChainTx).where(ChainTx.intent == "deliver")).all()
        assert queued.state == "queued" and queued.gas_limit is not None  # the dry run's
    # Meanwhile the supplier delivers the first order itself: the queued batch would revert.
    first = orders[0]
    world.escrow.deliver(world.supplier, [(first.oid, first.order, b"\x01" * 32)])

    new_agent(world, sessions, settings).drain()

    txs = deliver_txs(sessions)
    # Estimated again: refused before signing (nothing sent, no gas spent), then the rest.
    assert [(t.state, t.tx_hash, t.order_count) for t in txs[:1]] == [("failed", None, 3)]
    assert [(t.state, t.order_count) for t in txs[1:]] == [("mined", 2)]
    states = release_states(sessions)
    assert states == {
        first.oid: "superseded",
        orders[1].oid: "confirmed",
        orders[2].oid: "confirmed",
    }
