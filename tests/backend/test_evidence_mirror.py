"""The evidence routes read the chain only where the indexer's mirror says an order's logs are.

A served backend (embedded chain, indexer, delivery agent, API over HTTP) on SQLite and on
PostgreSQL; an order is paid, delivered and disputed, then the chain grows by `GROWTH` empty
blocks. The node's ``w3.eth.get_logs`` is wrapped by `LogSpy`, which records each range the API
asks for and calls through to the real node (nothing is answered for it), so the tests see
exactly what the evidence endpoints read:

- building the bundle and accepting additions ask only for blocks the mirror names for the
  order, its listing and its batches, and for nothing of the unindexed tail when there is none;
- an order the mirror does not know is 404, and a wallet that is not the party 403, before any
  log is read;
- with the indexer stopped, up to `MAX_UNINDEXED_BLOCKS` blocks past the checkpoint are read as
  one tail range, and one block more is 503 with ``Retry-After`` until the indexer catches up.

Calls of the background workers' threads (the indexer's and the agent's) and of the test itself
are not the API's and are left out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_utils import keccak
from sqlalchemy import select

from backend.evidence.chainview import ChainView, FactMissing
from backend.evidence.service import MAX_UNINDEXED_BLOCKS
from backend.rpc_proxy import serialize_provider
from backend.runtime import Runtime
from contracts.encoding import Order, OrderState, order_id
from indexer import models as mirror
from tests.backend.api_helpers import Bought, Served, backend_settings, database, poll, serve

#: Empty blocks mined after the order.
GROWTH = 600
#: Threads whose `get_logs` calls are not the API's.
NOT_THE_API = ("kameng-indexer", "kameng-agent", "MainThread")
KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class LogSpy:
    """Records the block range of every ``w3.eth.get_logs`` call and calls the real one."""

    def __init__(self, runtime: Runtime) -> None:
        """Spy on `runtime`'s web3 connection (the API's `ChainView` reads through it)."""
        self.eth: Any = runtime.chain.w3.eth
        self.real: Any = self.eth.get_logs
        self.lock = threading.Lock()
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, params: dict[str, Any]) -> Any:
        """Record the call's thread and range, then ask the node."""
        with self.lock:
            self.calls.append(
                (threading.current_thread().name, int(params["fromBlock"]), int(params["toBlock"]))
            )
        return self.real(params)

    def api_ranges(self) -> list[tuple[int, int]]:
        """The ranges the API's request threads asked for."""
        with self.lock:
            return [(lo, hi) for name, lo, hi in self.calls if name not in NOT_THE_API]

    @contextmanager
    def installed(self) -> Iterator[LogSpy]:
        """Wrap the node's ``get_logs`` inside the block, with an empty record."""
        self.calls.clear()
        self.eth.get_logs = self
        try:
            yield self
        finally:
            del self.eth.get_logs


def mine(runtime: Runtime, blocks: int, chunk: int = 100) -> None:
    """Mine empty blocks in chunks, each under the embedded provider's lock (mining bypasses the
    provider; the indexer reads through it meanwhile)."""
    lock = serialize_provider(runtime.chain)
    for start in range(0, blocks, chunk):
        with lock:
            runtime.chain.mine(min(chunk, blocks - start))


def session_of(served: Served, account: Any) -> tuple[httpx.Client, dict[str, str]]:
    """An HTTP client and the headers of a SIWE session of `account`."""
    client = served.client(account)
    return client.http, {"Authorization": f"Bearer {client.token}"}


def indexed_block(served: Served) -> int:
    """The mirror's checkpoint, as ``GET /health`` reports it."""
    block = served.client().health().indexed_block
    assert block is not None
    return block


def mirror_blocks(served: Served, oid: int) -> set[int]:
    """The blocks the mirror names for an order's events, its listing and the listing's
    batches."""
    listing_id = oid >> 32
    with served.runtime.sessions() as session:
        blocks = set(
            session.scalars(
                select(mirror.OrderEvent.block_number).where(mirror.OrderEvent.order_id == oid)
            )
        )
        blocks |= set(
            session.scalars(
                select(mirror.Batch.block_number).where(mirror.Batch.listing_id == listing_id)
            )
        )
        listing = session.get(mirror.Listing, listing_id)
        assert listing is not None
        blocks.add(int(listing.block_number))
    return {int(b) for b in blocks}


@dataclass
class Grown:
    """A served backend whose chain grew by `GROWTH` blocks after a disputed order."""

    served: Served
    bought: Bought


@pytest.fixture(scope="module", params=KINDS)
def grown(request: pytest.FixtureRequest) -> Iterator[Grown]:
    with database(request.param) as url, serve(database_url=url, buyers=1) as served:
        served.upload(10)
        buyer = served.dev.buyers[0]
        bought = served.buy(buyer, 2)

        def delivered() -> Order | None:
            order = served.current(bought.order_id, buyer)
            return order if order.state == OrderState.DELIVERED else None

        order = poll(f"order {bought.order_id} delivered", delivered)
        served.escrow.tx.reset_nonce(buyer.address)
        served.escrow.dispute(buyer, bought.order_id, order, "kameng:statement", keccak(b"x"))
        mine(served.runtime, GROWTH)
        served.wait_indexed(timeout=300)
        yield Grown(served, bought)


def test_evidence_reads_only_the_blocks_the_mirror_names(grown: Grown) -> None:
    served, bought = grown.served, grown.bought
    oid = bought.order_id
    head = int(served.runtime.chain.w3.eth.block_number)
    assert indexed_block(served) == head  # no unindexed tail
    known = mirror_blocks(served, oid)
    assert len(known) >= 5 and max(known) < head - GROWTH + 5
    buyer, buyer_auth = session_of(served, bought.buyer)
    supplier, _ = session_of(served, served.dev.supplier)
    path = f"/evidence/orders/{oid}"
    # The vault discloses a disputed order's codes on the supplier's own signed request only.
    client = served.client()
    signed = client.sign_request(
        served.dev.supplier,
        client.http.build_request("POST", path + "/supplier-codes", json={"from_vault": True}),
    )
    with LogSpy(served.runtime).installed() as spy:
        got = buyer.get(path, headers=buyer_auth)
        assert got.status_code == 200, got.text
        secret = {"order_secret": "0x" + bytes(bought.key).hex()}
        added = buyer.post(path + "/buyer-secret", json=secret, headers=buyer_auth)
        assert added.status_code == 200, added.text
        codes = supplier.post(path + "/supplier-codes", json={"from_vault": True}, headers=signed)
        assert codes.status_code == 200, codes.text
        ranges = spy.api_ranges()
    assert int(served.runtime.chain.w3.eth.block_number) == head
    assert ranges, "the spy saw no read of the API's"
    for lo, hi in ranges:
        # every block asked for is one the mirror names: no range reaches into the empty ones
        assert set(range(lo, hi + 1)) <= known, (lo, hi, sorted(known))
    assert max(hi - lo + 1 for lo, hi in ranges) <= len(known)


def test_unknown_order_is_404_without_reading_logs(grown: Grown) -> None:
    served = grown.served
    unknown = order_id(served.dev.listing_id, 4_000_000)
    buyer, buyer_auth = session_of(served, grown.bought.buyer)
    supplier, supplier_auth = session_of(served, served.dev.supplier)
    path = f"/evidence/orders/{unknown}"
    with LogSpy(served.runtime).installed() as spy:
        answers = [
            buyer.get(path, headers=buyer_auth),
            buyer.post(
                path + "/buyer-secret", json={"order_secret": "0x" + "11" * 32}, headers=buyer_auth
            ),
            supplier.post(
                path + "/supplier-codes", json={"from_vault": True}, headers=supplier_auth
            ),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404], [a.text for a in answers]
        assert spy.api_ranges() == []


def test_not_a_party_is_403_without_reading_logs(grown: Grown) -> None:
    served, bought = grown.served, grown.bought
    stranger, stranger_auth = session_of(served, Account.create())
    buyer, buyer_auth = session_of(served, bought.buyer)
    path = f"/evidence/orders/{bought.order_id}"
    secret = {"order_secret": "0x" + bytes(bought.key).hex()}
    with LogSpy(served.runtime).installed() as spy:
        answers = [
            stranger.get(path, headers=stranger_auth),
            stranger.post(path + "/buyer-secret", json=secret, headers=stranger_auth),
            buyer.post(path + "/supplier-codes", json={"from_vault": True}, headers=buyer_auth),
        ]
        assert [a.status_code for a in answers] == [403, 403, 403], [a.text for a in answers]
        assert spy.api_ranges() == []


def test_a_fact_the_node_lacks_is_503_not_500(
    grown: Grown, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt or block the order's logs cite that the node cannot give (a node behind or
    reorganising, or not an archive node) is the node's condition: 503 with ``Retry-After``
    and what is missing, never a 500."""
    served, bought = grown.served, grown.bought
    mine(served.runtime, 1)  # a new head: the bundle is built again, not taken from the cache
    served.wait_indexed()
    real = ChainView.block

    def block(self: ChainView, ident: int | str) -> Any:
        if isinstance(ident, str):
            raise FactMissing("block", f"the node has no block {ident}")
        return real(self, ident)

    buyer, buyer_auth = session_of(served, bought.buyer)
    monkeypatch.setattr(ChainView, "block", block)
    got = buyer.get(f"/evidence/orders/{bought.order_id}", headers=buyer_auth)
    assert got.status_code == 503, got.text
    assert int(got.headers["Retry-After"]) >= 1
    assert "the node has no block 0x" in got.json()["detail"]
    monkeypatch.undo()
    assert buyer.get(f"/evidence/orders/{bought.order_id}", headers=buyer_auth).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_mirror_too_far_behind_is_503_until_the_indexer_catches_up(kind: str) -> None:
    with database(kind) as url:
        runtime = Runtime.embedded(backend_settings(), database_url=url, buyers=1)
        try:
            runtime.start(indexer=False, agent=False)
            assert runtime.dev is not None and runtime.url is not None
            indexer = runtime.indexer = runtime.make_indexer()  # run pass by pass, by hand
            indexer.run_once()
            served = Served(runtime=runtime, url=runtime.url, dev=runtime.dev)
            served.upload(5)
            bought = served.buy(runtime.dev.buyers[0], 1)
            indexer.run_once()
            checkpoint = int(runtime.chain.w3.eth.block_number)
            http, auth = session_of(served, bought.buyer)
            path = f"/evidence/orders/{bought.order_id}"
            assert http.get(path, headers=auth).status_code == 200
            mine(runtime, MAX_UNINDEXED_BLOCKS)
            with LogSpy(runtime).installed() as spy:
                got = http.get(path, headers=auth)
                assert got.status_code == 200, got.text
                tail = [(lo, hi) for lo, hi in spy.api_ranges() if hi > checkpoint]
            # the unindexed blocks are read as one range, and nothing wider
            assert tail and all(lo > checkpoint for lo, _ in tail)
            assert max(hi - lo + 1 for lo, hi in tail) == MAX_UNINDEXED_BLOCKS
            mine(runtime, 1)
            secret = {"order_secret": "0x" + bytes(bought.key).hex()}
            for answer in (
                http.get(path, headers=auth),
                http.post(path + "/buyer-secret", json=secret, headers=auth),
            ):
                assert answer.status_code == 503, answer.text
                assert int(answer.headers["Retry-After"]) >= 1
                assert "behind" in answer.json()["detail"]
            indexer.run_once()
            assert http.get(path, headers=auth).status_code == 200
            assert http.post(path + "/buyer-secret", json=secret, headers=auth).status_code == 200
        finally:
            runtime.stop()
