"""Audit finding 10 across a reorg, on anvil: the backend serves a sealed release only while its
delivery is on the canonical chain, as the indexer's mirror follows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from backend.chaintx import is_known
from backend.client import ApiError
from backend.gateway.models import ChainTx
from backend.release import verify_release_onchain
from backend.runtime import Runtime
from contracts.encoding import OrderState
from tests.backend.api_helpers import Served, backend_settings, poll

if TYPE_CHECKING:
    from contracts.chain import AnvilNode

pytestmark = pytest.mark.anvil


def test_a_reorg_that_drops_the_delivery_stops_serving_the_release(
    anvil_node: AnvilNode,
) -> None:
    """Audit finding 10: the delivery is mined and the release served; a reorg replaces the
    delivery's block with an empty one. The mirror rolls the order back to Paid, and the
    release is refused (409) until the same deliver transaction is mined again (the agent's
    chain gateway sends it again by itself), then served again, unchanged."""
    runtime = Runtime.dev_node(backend_settings(), rpc_url=anvil_node.url, buyers=1)
    try:
        runtime.start()
        assert runtime.dev is not None and runtime.url is not None
        served = Served(runtime=runtime, url=runtime.url, dev=runtime.dev)
        served.wait_indexed()
        served.upload(5)
        buyer = runtime.dev.buyers[0]
        bought = served.buy(buyer, 2)
        client = served.client(buyer)
        release = client.wait_release(bought.order_id)
        events = client.order(bought.order_id).events
        (delivery,) = [e for e in events if e.name == "OrderDelivered"]
        chain = runtime.chain
        assert delivery.block_number == chain.w3.eth.block_number  # the head holds the delivery
        with runtime.sessions() as session:
            raw = session.scalars(
                select(ChainTx.raw_tx).where(
                    ChainTx.intent == "deliver", ChainTx.tx_hash == delivery.tx_hash
                )
            ).one()
        assert raw is not None

        # No block is mined by itself from here on, so the re-sent delivery waits in the pool
        # while the test looks at the backend with the delivery off the chain.
        chain.make_request("evm_setAutomine", [False])
        chain.make_request("anvil_reorg", [1, []])  # the delivery's block, now an empty one
        assert served.escrow.order_matches(bought.order_id, bought.order)  # Paid on-chain again
        poll(
            "the mirror to roll the delivery back",
            lambda: client.order(bought.order_id).state == OrderState.PAID,
        )
        with pytest.raises(ApiError) as err:
            client.release(bought.order_id)
        assert err.value.status == 409 and "not on-chain yet" in err.value.detail
        assert not client.order(bought.order_id).release_ready

        # The gateway sends the same signed transaction again; it is mined in the next block.
        poll(
            "the delivery sent again",
            lambda: is_known(chain.w3, delivery.tx_hash),
        )
        chain.make_request("evm_mine", [])
        chain.make_request("evm_setAutomine", [True])
        again = client.wait_release(bought.order_id)
        (redelivery,) = [
            e for e in client.order(bought.order_id).events if e.name == "OrderDelivered"
        ]
        assert redelivery.tx_hash == delivery.tx_hash  # the same bytes, mined again
        assert again.digest == release.digest and again.sealed == release.sealed
        detail = client.order(bought.order_id)
        assert detail.state == OrderState.DELIVERED and detail.release_ready
        verified = verify_release_onchain(again, bought.key, served.escrow, bought.tx.block_number)
        assert len(verified.codes) == 2
        runtime.check()
    finally:
        runtime.stop()
