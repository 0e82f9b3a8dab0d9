"""The delivery agent on eth-tester, against SQLite and PostgreSQL: batching, skipping what is
not ours, and reconciling with what the chain says."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from backend.delivery.sources import ChainLogOrderSource, MirrorOrderSource
from backend.errors import ReleaseNotFound, UploadRejected
from backend.release_store import get_release
from backend.vault.service import stock_counts, upload_codes
from bench.world import World, commit_codes, demo_codes
from tests.backend.engine_delivery import (
    Crash,
    assert_delivered_once,
    buy,
    crash_at,
    deliver_txs,
    delivered_events,
    release_states,
)
from tests.backend.engine_helpers import engine_settings, stock_listing


def agent_for(world: World, sessions: sessionmaker[Session], settings: Settings) -> DeliveryAgent:
    return DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)


def seal_then_crash(world: World, sessions: sessionmaker[Session], settings: Settings) -> None:
    """Run an agent that dies right after storing its releases, before posting them."""
    agent = agent_for(world, sessions, settings)
    agent.crash_hook = crash_at("prepared")
    with pytest.raises(Crash):
        agent.run_once()


def test_paid_orders_are_sealed_and_posted_in_one_transaction(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=30)
    orders = [
        buy(world.escrow, b, stocked.listing_id, q)
        for b, q in zip(world.buyers, [1, 5, 2], strict=True)
    ]
    orders.append(buy(world.escrow, world.buyers[0], stocked.listing_id, 3))
    agent = agent_for(world, sessions, settings)
    sealed = agent.run_once()
    assert sorted(sealed) == sorted(b.oid for b in orders)
    with sessions() as session:
        assert get_release(session, orders[0].oid).state == "sent"
    assert agent.drain() == []
    assert_delivered_once(world.escrow, sessions, orders)
    assert [(t.state, t.order_count) for t in deliver_txs(sessions)] == [("mined", 4)]
    with sessions() as session:
        assert stock_counts(session, stocked.listing_id) == {"released": 11, "stock": 19}
    # Nothing new: a further pass does nothing.
    assert agent.run_once() == []


def test_batches_respect_the_batch_size(world: World, sessions: sessionmaker[Session]) -> None:
    settings = engine_settings(delivery_batch_size=2)
    stocked = stock_listing(world, sessions, settings, count=10)
    orders = [buy(world.escrow, world.buyers[i % 3], stocked.listing_id, 1) for i in range(5)]
    agent_for(world, sessions, settings).drain()
    assert_delivered_once(world.escrow, sessions, orders)
    assert [t.order_count for t in deliver_txs(sessions)] == [2, 2, 1]


def test_orders_the_vault_cannot_serve_are_left_alone(
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stocked = stock_listing(world, sessions, settings, count=3)
    commit_codes(world, stocked.listing_id, demo_codes(3, start=100), first_index=3)  # not ours
    ours = buy(world.escrow, world.buyers[0], stocked.listing_id, 2)
    straddling = buy(world.escrow, world.buyers[1], stocked.listing_id, 2)  # indexes 2..3
    # A supplier who never named our delivery key.
    rival = world.chain.new_account()
    world.escrow.authorize(world.admin, rival.address, world.sku, b"\x01" * 32)
    rival_listing, _ = world.escrow.create_listing(rival, sku=world.sku, unit_price=10**15)
    world.escrow.deposit_bond(rival, 10**18)
    with sessions() as session:
        upload_codes(session, world.escrow, rival, rival_listing, b"RIVAL-1\nRIVAL-2", settings)
    theirs = buy(world.escrow, world.buyers[2], rival_listing, 1)

    with caplog.at_level(logging.WARNING):
        agent_for(world, sessions, settings).drain()
    assert_delivered_once(world.escrow, sessions, [ours])
    assert set(delivered_events(world.escrow)) == {ours.oid}
    assert release_states(sessions) == {ours.oid: "confirmed"}
    assert "the vault has 1 of them" in caplog.text
    assert "has not named" in caplog.text
    with sessions() as session:
        for b in (straddling, theirs):
            with pytest.raises(ReleaseNotFound):
                get_release(session, b.oid)


def test_order_delivered_by_someone_else_is_superseded(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=5)
    first = buy(world.escrow, world.buyers[0], stocked.listing_id, 1)
    second = buy(world.escrow, world.buyers[1], stocked.listing_id, 1)
    seal_then_crash(world, sessions, settings)
    # The supplier delivers the first order by hand, with a digest of its own.
    world.escrow.deliver(world.supplier, [(first.oid, first.order, b"\x42" * 32)])
    agent_for(world, sessions, settings).drain()
    assert release_states(sessions) == {first.oid: "superseded", second.oid: "confirmed"}
    assert delivered_events(world.escrow)[first.oid] == ["0x" + "42" * 32]
    assert_delivered_once(world.escrow, sessions, [second])
    with sessions() as session, pytest.raises(ReleaseNotFound, match="superseded"):
        get_release(session, first.oid)


def test_orders_near_their_deadline_are_not_posted(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=5, delivery_window=600)
    late = buy(world.escrow, world.buyers[0], stocked.listing_id, 1)
    seal_then_crash(world, sessions, settings)  # sealed, never posted
    never_sealed = buy(world.escrow, world.buyers[1], stocked.listing_id, 1)
    world.chain.travel_to(never_sealed.order.deadline - 10)  # both inside the 30-s margin
    fresh = buy(world.escrow, world.buyers[2], stocked.listing_id, 1)
    agent_for(world, sessions, settings).drain()
    states = release_states(sessions)
    assert states == {late.oid: "abandoned", fresh.oid: "confirmed"}
    assert set(delivered_events(world.escrow)) == {fresh.oid}


def test_refunded_order_is_abandoned(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=5, delivery_window=600)
    order = buy(world.escrow, world.buyers[0], stocked.listing_id, 2)
    seal_then_crash(world, sessions, settings)
    world.chain.travel_to(order.order.deadline + 1)
    world.escrow.refund(order.buyer, order.oid, order.order)
    agent_for(world, sessions, settings).drain()
    assert release_states(sessions) == {order.oid: "abandoned"}
    assert delivered_events(world.escrow) == {}


def test_mirror_source_delivers_from_the_indexer(
    world: World, sessions: sessionmaker[Session], db_url: str
) -> None:
    from indexer import Indexer

    settings = engine_settings(order_source="auto")
    stocked = stock_listing(world, sessions, settings, count=10)
    orders = [buy(world.escrow, b, stocked.listing_id, 2) for b in world.buyers]
    indexer = Indexer(world.chain, db_url, world.escrow.address)
    try:
        indexer.run_once()
        agent = agent_for(world, sessions, settings)
        with sessions() as session:
            assert agent.source.candidates(session, min_deadline=0, limit=10)  # type: ignore[union-attr]
            assert isinstance(
                MirrorOrderSource(),
                type(agent.source.mirror),  # type: ignore[attr-defined]
            )
        agent.drain()
        indexer.run_once()
    finally:
        indexer.close()
    assert agent.source._use_mirror  # type: ignore[attr-defined]
    assert_delivered_once(world.escrow, sessions, orders)
    with sessions() as session:
        assert MirrorOrderSource().candidates(session, min_deadline=0, limit=10) == []
    assert len(deliver_txs(sessions)) == 1


def test_chain_source_resumes_from_its_cursor(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=10)
    source = ChainLogOrderSource(world.escrow, log_range=3, reorg_depth=2)
    first = buy(world.escrow, world.buyers[0], stocked.listing_id, 1)
    with sessions() as session:
        source.poll(session)
        assert [p.order_id for p in source.candidates(session, min_deadline=0, limit=5)] == [
            first.oid
        ]
    second = buy(world.escrow, world.buyers[1], stocked.listing_id, 1)
    again = ChainLogOrderSource(world.escrow, log_range=3, reorg_depth=2)
    with sessions() as session:
        again.poll(session)
        found = again.candidates(session, min_deadline=0, limit=5)
    assert [p.order_id for p in found] == [first.oid, second.oid]
    assert found[1].order == second.order and found[1].buyer_pubkey == bytes(second.key.public_key)


def test_order_across_two_batches_verifies_against_both_roots(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=3)
    with sessions() as session:
        upload_codes(
            session,
            world.escrow,
            world.supplier,
            stocked.listing_id,
            b"\n".join(demo_codes(3, start=3)),
            settings,
        )
    order = buy(world.escrow, world.buyers[0], stocked.listing_id, 5)
    agent_for(world, sessions, settings).drain()
    assert_delivered_once(world.escrow, sessions, [order])
    with sessions() as session:
        release = get_release(session, order.oid)
    assert [c.batch_index for c in release.codes] == [0, 0, 0, 1, 1]


def test_no_code_reaches_a_log_line_or_an_error(
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        stocked = stock_listing(world, sessions, settings, count=6)
        with sessions() as session, pytest.raises(UploadRejected) as rejected:
            upload_codes(
                session,
                world.escrow,
                world.supplier,
                stocked.listing_id,
                b"\n".join(stocked.codes[:2]),
                settings,
            )
        orders = [buy(world.escrow, b, stocked.listing_id, 2) for b in world.buyers]
        agent_for(world, sessions, settings).drain()
        with sessions() as session:
            reprs = [repr(get_release(session, o.oid)) for o in orders]
    text = caplog.text + str(rejected.value) + repr(rejected.value) + "".join(reprs)
    assert "sealed 3 releases" in caplog.text
    for code in stocked.codes:
        assert code.decode() not in text


def test_agent_accepts_a_suppliers_proposal_of_its_key_and_delivers(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Audit finding 1: a delivery key acts only after it accepts. The agent accepts a supplier's
    proposal of its own key when it meets that supplier's orders, then delivers them."""
    stocked = stock_listing(world, sessions, settings, count=5)
    escrow, supplier, key = world.escrow, world.supplier, world.delivery_key
    escrow.set_delivery_key(supplier, key.address, False)
    escrow.set_delivery_key(supplier, key.address)
    assert escrow.call("isDeliveryKey", supplier.address, key.address) is False
    orders = [buy(escrow, world.buyers[0], stocked.listing_id, 1)]
    agent_for(world, sessions, settings).drain()
    assert escrow.call("isDeliveryKey", supplier.address, key.address) is True
    assert_delivered_once(escrow, sessions, orders)


def test_agent_whose_key_was_not_proposed_delivers_nothing(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Audit finding 1: without a proposal the agent has nothing to accept and skips the orders."""
    stocked = stock_listing(world, sessions, settings, count=5)
    escrow, supplier, key = world.escrow, world.supplier, world.delivery_key
    escrow.set_delivery_key(supplier, key.address, False)
    order = buy(escrow, world.buyers[0], stocked.listing_id, 1)
    assert agent_for(world, sessions, settings).run_once() == []
    assert escrow.call("isDeliveryKey", supplier.address, key.address) is False
    assert escrow.order_hash(order.oid) != b"\0" * 32
