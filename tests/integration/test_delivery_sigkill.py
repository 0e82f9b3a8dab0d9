"""A real SIGKILL of the delivery agent while deliveries are in flight, on anvil with 1-s blocks.

Buyers pay in waves while an agent subprocess is killed with SIGKILL several times, each time
while one of its delivery transactions waits for a block (observed in the database, not
guessed with sleeps), and restarted. In the end every order is delivered exactly once on-chain,
with the digest of the release stored in the database, which its buyer opens and verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db import make_engine, migrate, session_factory
from backend.gateway.models import IN_FLIGHT, ChainTx
from backend.models import Release
from backend.release import verify_release_onchain
from backend.release_store import get_release
from backend.vault.service import upload_codes
from bench.world import World, demo_codes, make_world
from contracts.chain import AnvilNode, Chain

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 36
KILLS = 3

pytestmark = pytest.mark.anvil


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once as a SQLite file and once as a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/kameng.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture()
def node_chain() -> Iterator[Chain]:
    """anvil, mining on demand for the setup; the test switches it to 1-s blocks."""
    node = AnvilNode()
    chain = node.start()
    try:
        yield chain
    finally:
        node.stop()


class AgentProcess:
    """`python -m backend.delivery.agent` with the test's settings in its environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend.delivery.agent"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the agent has recovered and is ready
        assert line.strip() == "agent ready", self.log_path.read_text()[-3000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll observed state (the database) until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)  # a polling interval, not a stand-in for synchronisation


def _buy_wave(
    world: World, listing_id: int, keys: dict[bytes, PrivateKey], first: int, count: int
) -> None:
    """Purchases `first` .. `first + count - 1`, sent without waiting for receipts."""
    escrow = world.escrow
    buyers = world.buyers
    for i in range(first, first + count):
        key = PrivateKey.generate()
        keys[bytes(key.public_key)] = key
        quantity = 1 + i % 3
        call = escrow.contract.functions.buy(
            listing_id, quantity, 10**15, "0x" + "00" * 20, bytes(key.public_key)
        )
        escrow.tx.send(
            buyers[i % len(buyers)], call, value=10**15 * quantity, gas=400_000, wait=False
        )
        time.sleep(0.12)  # pacing the load: about 8 orders per second


def test_sigkill_while_deliveries_are_in_flight(
    node_chain: Chain, db_url: str, tmp_path: Path
) -> None:
    chain = node_chain
    world = make_world(chain, buyers=4)
    settings = Settings(
        environment="test",
        database_url=db_url,
        rpc_url=chain.rpc_url,
        master_key=os.urandom(32).hex(),
        fingerprint_key=os.urandom(32).hex(),
        session_key=os.urandom(32).hex(),
        delivery_key="0x" + bytes(world.delivery_key.key).hex(),
        order_source="chain",
    )
    migrate(db_url)
    engine = make_engine(db_url)
    sessions: sessionmaker[Session] = session_factory(engine)
    escrow = world.escrow
    lid, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    escrow.deposit_bond(world.supplier, 10**19)
    with sessions() as session:
        upload_codes(session, escrow, world.supplier, lid, b"\n".join(demo_codes(150)), settings)
    chain.make_request("evm_setAutomine", [False])
    chain.make_request("evm_setIntervalMining", [1])

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAMENG_ENVIRONMENT": "test",
        "KAMENG_DATABASE_URL": db_url,
        "KAMENG_RPC_URL": str(chain.rpc_url),
        "KAMENG_ESCROW_ADDRESS": escrow.address,
        "KAMENG_MASTER_KEY": settings.master_key.get_secret_value(),
        "KAMENG_FINGERPRINT_KEY": settings.fingerprint_key.get_secret_value(),
        "KAMENG_SESSION_KEY": settings.session_key.get_secret_value(),
        "KAMENG_DELIVERY_KEY": settings.delivery_key.get_secret_value(),  # type: ignore[union-attr]
        "KAMENG_ORDER_SOURCE": "chain",
    }
    agent = AgentProcess(env, tmp_path / "agent.log")
    keys: dict[bytes, PrivateKey] = {}
    # Buyers pay in waves, one before each kill and one after the last restart, so that there is
    # always a delivery left to be in flight when the test waits for one (with one continuous
    # stream a slow agent could deliver everything in two transactions, and the third wait had
    # nothing to see: a CI flake under load).
    wave = ORDERS // (KILLS + 1)

    def sent_in_flight() -> bool:
        """A ``deliver`` intent signed (its bytes stored), waiting for a block."""
        with sessions() as s:
            return (
                s.execute(
                    select(func.count())
                    .select_from(ChainTx)
                    .where(ChainTx.intent == "deliver", ChainTx.state.in_(list(IN_FLIGHT)))
                ).scalar_one()
                > 0
            )

    try:
        agent.start()
        for k in range(KILLS):
            _buy_wave(world, lid, keys, k * wave, wave)
            _wait_for(sent_in_flight, 30, "a delivery transaction in flight")
            agent.kill()
            agent.start()
        _buy_wave(world, lid, keys, KILLS * wave, ORDERS - KILLS * wave)

        paid = {}
        topic = "0x" + escrow.codec.topic("OrderPaid").hex()
        _wait_for(lambda: len(escrow.logs(0, "latest", [topic])) == ORDERS, 30, "all purchases")
        for raw in escrow.logs(0, "latest", [topic]):
            ev = escrow.codec.decode_log(raw)
            assert ev is not None
            paid[int(ev.args["orderId"])] = keys[bytes(ev.args["buyerPubKey"])]

        def all_confirmed() -> bool:
            with sessions() as s:
                return (
                    s.execute(
                        select(func.count())
                        .select_from(Release)
                        .where(Release.state == "confirmed")
                    ).scalar_one()
                    == ORDERS
                )

        _wait_for(all_confirmed, 60, "every release confirmed")
    finally:
        agent.stop()

    delivered: dict[int, list[bytes]] = {}
    for raw in escrow.logs(0, "latest", ["0x" + escrow.codec.topic("OrderDelivered").hex()]):
        ev = escrow.codec.decode_log(raw)
        assert ev is not None
        delivered.setdefault(int(ev.args["orderId"]), []).append(bytes(ev.args["releaseDigest"]))
    assert set(delivered) == set(paid)
    assert all(len(digests) == 1 for digests in delivered.values())  # exactly once

    with sessions() as session:
        rows = {int(r.order_id): r for r in session.execute(select(Release)).scalars()}
        assert set(rows) == set(paid)
        for oid, key in paid.items():
            assert rows[oid].digest == "0x" + delivered[oid][0].hex()
            verified = verify_release_onchain(get_release(session, oid), key, escrow)
            assert len(verified.codes) == rows[oid].quantity
        txs = session.scalars(select(ChainTx).where(ChainTx.intent == "deliver")).all()
        # Every intent is over: mined, or dropped/failed with its orders re-posted.
        assert {t.state for t in txs} <= {"mined", "reverted", "failed", "dropped"}
        delivering = [int(s) for t in txs if t.state == "mined" for s in t.subjects.split(",")]
        assert sorted(delivering) == sorted(paid)  # each order in exactly one mined intent
    assert max(len(t.subjects.split(",")) for t in txs) > 1  # batched: several per transaction
    engine.dispose()
