"""The delivery agent's on-chain mode (issue 16): orders of a listing that promised on-chain
delivery go out with ``deliverOnChain``, the rest with ``deliver``, never mixed in one
transaction; what the chain then holds opens and verifies without the backend's database."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from backend.release import release_from_published, verify_release
from backend.release_store import get_release
from bench.world import World
from contracts.encoding import split_order_id
from tests.backend.engine_delivery import Bought, assert_delivered_once, buy, deliver_txs
from tests.backend.engine_helpers import stock_listing


def agent_for(world: World, sessions: sessionmaker[Session], settings: Settings) -> DeliveryAgent:
    return DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)


def recovered_codes(world: World, bought: Bought) -> list[bytes]:
    """Open an order's release from its ReleasePublished log alone, checked against the chain."""
    escrow = world.escrow
    published = escrow.published_releases([bought.oid])[bought.oid]
    listing_id, _ = split_order_id(bought.oid)
    release = release_from_published(
        published,
        order_id=bought.oid,
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        buyer=bought.buyer.address,
        quantity=bought.order.quantity,
        batch_roots={0: escrow.batch(listing_id, 0)[0]},
    )
    batches = {0: escrow.batch(listing_id, 0)}
    verified = verify_release(
        release,
        bought.key,
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        onchain_digest=release.digest,
        quantity=bought.order.quantity,
        batches=batches,
    )
    return [c.code for c in verified.codes]


def test_on_chain_listings_publish_their_releases_and_others_do_not(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    plain = stock_listing(world, sessions, settings, count=6)
    chained = stock_listing(world, sessions, settings, count=6, start=100)
    world.escrow.require_on_chain_release(world.supplier, chained.listing_id)
    orders = [
        buy(world.escrow, world.buyers[0], plain.listing_id, 2),
        buy(world.escrow, world.buyers[1], chained.listing_id, 3),
        buy(world.escrow, world.buyers[2], plain.listing_id, 1),
        buy(world.escrow, world.buyers[0], chained.listing_id, 1),
    ]
    agent_for(world, sessions, settings).drain()
    assert_delivered_once(world.escrow, sessions, orders)
    # One transaction per mode: the oldest order's mode goes first.
    assert [t.order_count for t in deliver_txs(sessions)] == [2, 2]
    published = world.escrow.published_releases([b.oid for b in orders])
    assert set(published) == {orders[1].oid, orders[3].oid}
    # What the chain holds is exactly what the backend stored, and opens to the codes sold.
    with sessions() as session:
        for b in (orders[1], orders[3]):
            assert published[b.oid].sealed_release == bytes(get_release(session, b.oid).sealed)
    assert recovered_codes(world, orders[1]) == chained.codes[0:3]
    assert recovered_codes(world, orders[3]) == chained.codes[3:4]


def test_a_listing_that_turns_on_chain_after_the_agent_read_it(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    stocked = stock_listing(world, sessions, settings, count=6)
    agent = agent_for(world, sessions, settings)
    first = buy(world.escrow, world.buyers[0], stocked.listing_id, 1)
    agent.drain()  # reads the listing as off-chain and remembers it
    world.escrow.require_on_chain_release(world.supplier, stocked.listing_id)
    later = buy(world.escrow, world.buyers[1], stocked.listing_id, 2)
    # The dry run's EscrowReleaseRequired makes the agent read the listing again; the order
    # waits one pass and then goes out on-chain, not abandoned.
    agent.drain()
    assert_delivered_once(world.escrow, sessions, [first, later])
    assert set(world.escrow.published_releases([first.oid, later.oid])) == {later.oid}
    assert recovered_codes(world, later) == stocked.codes[1:3]
