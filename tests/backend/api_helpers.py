"""Helpers of the API and CLI tests: a served backend (real chain, real DB, real workers).

`serve()` starts a `Runtime` on an embedded chain with its development world, the indexer, the
delivery agent and the API under uvicorn on a free port, and hands back a `Served` with the
shortcuts tests need. Nothing is mocked: requests go over HTTP, orders are paid on-chain.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from backend.client import ApiError, KamengClient
from backend.config import Settings
from backend.keys import next_order_key, public_key_bytes
from backend.runtime import DevWorld, Runtime
from bench.world import demo_codes

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from nacl.public import PrivateKey

    from backend.schemas import UploadPublic
    from contracts.client import EscrowClient, TxResult
    from contracts.encoding import Order

T = TypeVar("T")


def backend_settings(**overrides: object) -> Settings:
    """Settings outside development, with fresh random secrets, reading orders from the mirror."""
    values: dict[str, object] = {
        "environment": "test",
        "master_key": os.urandom(32).hex(),
        "fingerprint_key": os.urandom(32).hex(),
        "session_key": os.urandom(32).hex(),
        "delivery_key": os.urandom(32).hex(),
        "order_source": "auto",
        # Module-scoped servers sign in hundreds of times from one address; the limiter has
        # its own tests (test_evidence_limits.py).
        "rate_limit_scale": 1000.0,
        # The keeper settles and resolves on its own; tests that travel in time and then act
        # by hand would race it, so it runs only where a test asks for it (test_keeper.py).
        "keeper": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def poll(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling a condition of the running backend, with a deadline


@dataclass
class Bought:
    """A paid order."""

    order_id: int
    order: Order
    key: PrivateKey
    buyer: LocalAccount
    tx: TxResult


@dataclass
class Served:
    """A running backend and its development world."""

    runtime: Runtime
    url: str
    dev: DevWorld

    @property
    def escrow(self) -> EscrowClient:
        """The escrow client the backend uses."""
        return self.runtime.escrow

    def client(self, account: LocalAccount | None = None) -> KamengClient:
        """An API client, signed in as `account` when given."""
        client = KamengClient(self.url)
        if account is not None:
            client.sign_in(account)
        return client

    def upload(self, count: int, start: int = 0, listing_id: int | None = None) -> UploadPublic:
        """Upload `count` demo codes to the dev listing as the dev supplier."""
        data = b"\n".join(demo_codes(count, start)) + b"\n"
        return self.client(self.dev.supplier).upload_codes(listing_id or self.dev.listing_id, data)

    def buy(self, buyer: LocalAccount, quantity: int = 1, listing_id: int | None = None) -> Bought:
        """Pay for `quantity` codes of the dev listing with a wallet-derived order key."""
        key, _ = next_order_key(self.escrow, buyer)
        self.escrow.tx.reset_nonce(buyer.address)
        oid, order, res = self.escrow.buy(
            buyer,
            listing_id or self.dev.listing_id,
            quantity,
            max_unit_price=10**16,
            buyer_pubkey=public_key_bytes(key),
        )
        return Bought(oid, order, key, buyer, res)

    def current(self, order_id: int, account: LocalAccount) -> Order:
        """The order as stored on-chain, taken from the mirror (polled until it matches)."""
        from backend.cli.common import order_from_public

        client = self.client()

        def fresh() -> Order | None:
            try:
                public = client.order(order_id, account)
            except ApiError as exc:
                if exc.status == 404:  # paid on-chain, not in the mirror yet
                    return None
                raise
            order = order_from_public(public)
            return order if self.escrow.order_matches(order_id, order) else None

        return poll(f"order {order_id} in the mirror", fresh)

    def wait_indexed(self, timeout: float = 20.0) -> None:
        """Wait until the mirror has reached the chain's head."""
        head = self.runtime.chain.w3.eth.block_number

        def caught_up() -> bool:
            health = self.client().health()
            return health.indexed_block is not None and health.indexed_block >= head

        poll("the indexer to reach the head", caught_up, timeout)


class AgentHold:
    """Holds the backend's running delivery agent at one of its crash points.

    The first time the agent reaches `point` (a `DeliveryAgent.crash_hook` point: ``prepared``
    after storing sealed releases, ``tx-stored`` after signing and storing a deliver transaction
    but before broadcasting it) its thread waits there until `release`. Everything it did before
    that point is committed, so the API, the indexer and the chain carry on around it.
    """

    def __init__(self, point: str) -> None:
        self.point = point
        self.reached = threading.Event()
        self._go = threading.Event()

    def __call__(self, point: str) -> None:
        """The crash hook: hold the agent the first time it reaches our point."""
        if point == self.point and not self.reached.is_set():
            self.reached.set()
            self._go.wait(120)  # released by `release`; a bound so a broken test cannot hang

    def wait(self, timeout: float = 20.0) -> None:
        """Wait until the agent is held at the point.

        Raises:
            AssertionError: it did not get there within `timeout`.
        """
        if not self.reached.wait(timeout):
            raise AssertionError(f"the delivery agent never reached {self.point!r}")

    def release(self) -> None:
        """Let the agent go on."""
        self._go.set()


@contextmanager
def agent_held(served: Served, point: str) -> Iterator[AgentHold]:
    """Hold the served backend's delivery agent at `point` (see `AgentHold`) inside the block;
    it is always let go on the way out."""
    agent = served.runtime.agent
    assert agent is not None, "the backend runs without a delivery agent"
    hold = AgentHold(point)
    agent.crash_hook = hold
    try:
        yield hold
    finally:
        agent.crash_hook = None
        hold.release()


@contextmanager
def database(kind: str) -> Iterator[str | None]:
    """A fresh database URL: None for SQLite (the runtime makes a temporary file), or a new
    PostgreSQL schema on the local server, dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    import sqlalchemy as sa

    from tests.conftest import POSTGRES_ADMIN_URL

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def serve(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    buyers: int = 3,
    agent: bool = True,
) -> Iterator[Served]:
    """A running backend on an embedded chain; stopped afterwards."""
    runtime = Runtime.embedded(
        settings or backend_settings(), database_url=database_url, buyers=buyers
    )
    try:
        runtime.start(agent=agent)
        assert runtime.dev is not None and runtime.url is not None
        served = Served(runtime=runtime, url=runtime.url, dev=runtime.dev)
        served.wait_indexed()  # the dev world's listing and bond are in the mirror
        yield served
        runtime.check()
    finally:
        runtime.stop()
