"""What `kameng serve` runs (the chain, the workers, the API), also used by the demo, benchmarks
and tests.

A `Runtime` holds a chain connection, the escrow, the database, and runs three workers:

- the indexer, which mirrors the escrow's events into SQL (a thread);
- the delivery agent, which seals paid orders and posts their digests (a thread);
- the API under uvicorn: a thread (`start_api`), the main thread (`kameng serve
  --single-process`), or a child process restarted when it dies (`kameng serve`, see
  `backend.supervisor`, which keeps the chain and the other two workers here).

`worker_report` says which of the indexer and the agent still run; ``GET /health`` answers 503
naming any that died.

`Runtime.embedded()` is the zero-configuration case: an in-process eth-tester chain, a freshly
deployed escrow, a development world (admin, arbiter, a supplier with a bond, a listing and a
delivery key, funded buyers; every key made at random at start) and a SQLite file in a
temporary directory. `Runtime.connect()` points at a real node and database instead.

The embedded chain is not thread-safe, so its provider is serialized with one lock
(`backend.rpc_proxy.serialize_provider`) before any worker starts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_utils import keccak

from backend.db import bind_escrow, make_engine, migrate, session_factory
from backend.rpc_proxy import serialize_provider
from backend.vault.master import open_vault
from backend.workers import RUNNING, WorkerReport, dead
from contracts.chain import embedded_chain, free_port, rpc_chain
from contracts.client import EscrowClient, EscrowConfig, deploy_contract
from contracts.encoding import sku_id
from contracts.errors import KamengError
from indexer.db import private_dirs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import uvicorn
    from eth_account.signers.local import LocalAccount
    from fastapi import FastAPI
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from backend.config import Settings
    from contracts.chain import Chain

log = logging.getLogger("kameng.runtime")

#: The sku of the development world's listing.
DEV_SKU_NAME = "demo-gift-card-10"


class RuntimeError_(KamengError):
    """The runtime could not start; the message says what to fix."""


@dataclass
class DevWorld:
    """Accounts and a listing made at random on an embedded chain (development only)."""

    admin: LocalAccount
    arbiter: LocalAccount
    supplier: LocalAccount
    delivery: LocalAccount
    buyers: list[LocalAccount]
    sku: bytes
    listing_id: int
    #: The keeper's key: no role, only gas money (`backend.keeper`).
    keeper: LocalAccount | None = None
    #: A 6-decimal USDT stand-in the escrow accepts; anyone may mint it (the faucet:
    #: ``mint(to, amount)``), so any development wallet can pay and bond in a stablecoin.
    usdt: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Addresses and private keys, for `kameng serve --dev-accounts FILE`."""

        def one(account: LocalAccount) -> dict[str, str]:
            return {"address": account.address, "private_key": "0x" + bytes(account.key).hex()}

        return {
            "warning": "development keys of an in-process chain; worthless anywhere else",
            "admin": one(self.admin),
            "arbiter": one(self.arbiter),
            "supplier": one(self.supplier),
            "delivery": one(self.delivery),
            **({"keeper": one(self.keeper)} if self.keeper is not None else {}),
            "buyers": [one(b) for b in self.buyers],
            "sku": "0x" + self.sku.hex(),
            "listing_id": self.listing_id,
            **({"usdt": self.usdt} if self.usdt is not None else {}),
        }


def deploy_dev_world(
    chain: Chain, *, buyers: int = 3, unit_price: int = 10**16, bond: int = 10 * 10**18
) -> tuple[EscrowClient, DevWorld]:
    """Deploy an escrow and set up a development world on `chain`."""
    admin = chain.new_account(ether=1000)
    arbiter = chain.new_account(ether=100)
    supplier = chain.new_account(ether=100_000)
    delivery = chain.new_account(ether=100)
    fee_recipient = chain.new_account(ether=1)
    escrow = EscrowClient.deploy(chain, admin, EscrowConfig(fee_recipient=fee_recipient.address))
    escrow.grant_role(admin, "ARBITER_ROLE", arbiter.address)
    sku = sku_id(DEV_SKU_NAME)
    escrow.authorize(admin, supplier.address, sku, keccak(text="licence: development"))
    escrow.name_delivery_key(supplier, delivery)
    escrow.deposit_bond(supplier, bond)
    listing_id, _ = escrow.create_listing(
        supplier,
        sku=sku,
        unit_price=unit_price,
        delivery_window=3600,
        dispute_window=86_400,
        bond_bps=1000,
        metadata_uri=f"kameng:dev/{DEV_SKU_NAME}",
    )
    usdt, _ = deploy_contract(chain, admin, "TestToken", "Tether USD (development)", "USDT")
    escrow.set_token_allowed(admin, usdt, True)
    world = DevWorld(
        admin=admin,
        arbiter=arbiter,
        supplier=supplier,
        delivery=delivery,
        buyers=[chain.new_account(ether=1000) for _ in range(buyers)],
        sku=sku,
        listing_id=listing_id,
        keeper=chain.new_account(ether=100),
        usdt=usdt,
    )
    return escrow, world


def load_account(path: str | Path) -> LocalAccount:
    """A local account from a file holding its private key as hex (one line).

    Raises:
        RuntimeError_: the file is missing or does not hold a key.
    """
    try:
        text = Path(path).read_text().strip()
        account: LocalAccount = Account.from_key(text)
    except (OSError, ValueError) as exc:
        raise RuntimeError_(
            f"cannot read a private key from {path}: {type(exc).__name__}; the file must hold "
            "one 0x-prefixed hex key"
        ) from exc
    return account


@dataclass
class Runtime:
    """A chain, an escrow, a database and the workers around them.

    Attributes:
        settings: The backend's settings.
        chain: The chain connection (embedded or RPC).
        escrow: The escrow client the workers and the API share.
        engine: The database engine.
        sessions: The session factory.
        delivery_account: The key the delivery agent signs with.
        suppliers: Supplier accounts this backend commits uploads for.
        dev: The development world, on an embedded chain.
        start_block: The escrow's deployment block (where indexing starts).
    """

    settings: Settings
    chain: Chain
    escrow: EscrowClient
    engine: Engine
    sessions: sessionmaker[Session]
    delivery_account: LocalAccount | None
    suppliers: list[LocalAccount] = field(default_factory=list)
    dev: DevWorld | None = None
    start_block: int = 0
    tempdir: tempfile.TemporaryDirectory[str] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    server: uvicorn.Server | None = None
    url: str | None = None
    errors: list[BaseException] = field(default_factory=list)
    #: Each worker's thread, by name (``indexer``, ``agent``, ``api``).
    worker_threads: dict[str, threading.Thread] = field(default_factory=dict)
    #: The exception each worker died of, by name.
    worker_errors: dict[str, BaseException] = field(default_factory=dict)
    #: Where each singleton worker stands in its election, by worker name (``agent``...).
    seats: dict[str, Any] = field(default_factory=dict)
    indexer: Any = None
    agent: Any = None
    keeper: Any = None
    #: Blocks below the head a real node may still reorganise (the indexer's finality depth).
    finality_depth: int = 2
    #: Seconds between the indexer's head polls.
    poll_interval: float = 0.05
    #: A node URL to advertise at ``GET /chain`` (a development node; never a provider's URL,
    #: which may carry an API key).
    advertise_rpc: str | None = None

    # ------------------------------------------------------------ construction

    @classmethod
    def embedded(
        cls, settings: Settings, *, database_url: str | None = None, buyers: int = 3
    ) -> Runtime:
        """The zero-configuration runtime: embedded chain, fresh escrow, dev world, SQLite.

        Args:
            settings: The backend's settings (development secrets are fine here).
            database_url: A database to use instead of a fresh SQLite file.
            buyers: How many funded development buyers to make.
        """
        chain = embedded_chain()
        serialize_provider(chain)
        escrow, dev = deploy_dev_world(chain, buyers=buyers)
        runtime = cls.local(
            settings,
            chain=chain,
            escrow=escrow,
            delivery_account=dev.delivery,
            suppliers=[dev.supplier],
            database_url=database_url,
        )
        runtime.dev = dev
        return runtime

    @classmethod
    def local(
        cls,
        settings: Settings,
        *,
        chain: Chain,
        escrow: EscrowClient,
        delivery_account: LocalAccount,
        suppliers: Iterable[LocalAccount] = (),
        database_url: str | None = None,
        start_block: int = 0,
    ) -> Runtime:
        """A runtime around a chain and escrow the caller set up (the demo, benchmarks, tests).

        Args:
            settings: The backend's settings.
            chain: The chain (an embedded one is serialized here).
            escrow: The deployed escrow; the workers and the API share its client.
            delivery_account: The supplier's delivery key.
            suppliers: Supplier accounts whose uploads this backend commits.
            database_url: The database; a fresh SQLite file in a temporary directory if None.
            start_block: Where indexing starts.
        """
        if chain.kind == "embedded":
            serialize_provider(chain)
        tempdir = None
        if database_url is None:
            tempdir = tempfile.TemporaryDirectory(prefix="kameng-")
            database_url = f"sqlite:///{tempdir.name}/kameng.db"
        engine = make_engine(database_url)
        runtime = cls(
            settings=settings,
            chain=chain,
            escrow=escrow,
            engine=engine,
            sessions=session_factory(engine),
            delivery_account=delivery_account,
            suppliers=list(suppliers),
            start_block=start_block,
            tempdir=tempdir,
        )
        runtime.prepare_database()
        return runtime

    @classmethod
    def dev_node(
        cls, settings: Settings, *, rpc_url: str, database_url: str | None = None, buyers: int = 3
    ) -> Runtime:
        """A development world deployed on a development node (anvil), which funds accounts.

        Raises:
            ChainError: the node does not answer, or cannot fund accounts (not a dev node).
        """
        chain = rpc_chain(rpc_url)
        escrow, dev = deploy_dev_world(chain, buyers=buyers)
        runtime = cls.local(
            settings,
            chain=chain,
            escrow=escrow,
            delivery_account=dev.delivery,
            suppliers=[dev.supplier],
            database_url=database_url,
        )
        runtime.dev = dev
        runtime.advertise_rpc = rpc_url
        return runtime

    @classmethod
    def connect(
        cls,
        settings: Settings,
        *,
        rpc_url: str,
        database_url: str,
        escrow: str,
        suppliers: Iterable[LocalAccount] = (),
        start_block: int = 0,
    ) -> Runtime:
        """A runtime on a real node and database, for an escrow already deployed.

        Raises:
            ChainError: the node does not answer.
            ConfigError: the settings lack a delivery key.
        """
        chain = rpc_chain(rpc_url)
        client = EscrowClient(chain, escrow)
        engine = make_engine(database_url)
        runtime = cls(
            settings=settings,
            chain=chain,
            escrow=client,
            engine=engine,
            sessions=session_factory(engine),
            delivery_account=settings.delivery_account(),
            suppliers=list(suppliers),
            start_block=start_block,
        )
        runtime.prepare_database()
        return runtime

    def prepare_database(self) -> None:
        """Migrate the schema (mirror and vault), bind the database to this escrow, and open the
        vault: refuse a master key it was not written with (`backend.vault.master.open_vault`)."""
        migrate(self.engine)
        with self.sessions() as session:
            bind_escrow(session, self.chain.chain_id, self.escrow.address)
            open_vault(session, self.settings.master_key_bytes)
            session.commit()

    # ------------------------------------------------------------ workers

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # recorded and re-raised by `check`
                log.exception("%s stopped", name)
                self.worker_errors[name] = exc
                self.errors.append(exc)
            else:
                if not self.stop_event.is_set():
                    log.error("%s returned although nobody asked it to stop", name)

        thread = threading.Thread(target=run, name=f"kameng-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)
        self.worker_threads[name] = thread

    def worker_report(self) -> WorkerReport:
        """The liveness of the background workers started here (the indexer, the agent).

        The API thread is left out: when it can answer, it runs. A worker that stopped says
        why: the type of the exception it died of, ``stopped`` after `stop`, or ``returned``.
        """
        workers: dict[str, str] = {}
        for name, thread in self.worker_threads.items():
            if name == "api":
                continue
            if thread.is_alive():
                workers[name] = RUNNING
            elif name in self.worker_errors:
                workers[name] = dead(type(self.worker_errors[name]).__name__)
            else:
                workers[name] = dead("stopped" if self.stop_event.is_set() else "returned")
        return WorkerReport(workers=workers)

    def make_indexer(self) -> Any:
        """The indexer for this runtime's chain, database and escrow."""
        from indexer.runner import Indexer

        return Indexer(
            self.chain,
            self.engine,
            self.escrow.address,
            start_block=self.start_block,
            finality_depth=0 if self.chain.kind == "embedded" else self.finality_depth,
            poll_interval=self.poll_interval,
        )

    def make_agent(self) -> Any:
        """The delivery agent for this runtime.

        Raises:
            RuntimeError_: no delivery account is configured.
        """
        from backend.delivery.agent import DeliveryAgent

        if self.delivery_account is None:
            raise RuntimeError_("no delivery account: set KAMENG_DELIVERY_KEY")
        return DeliveryAgent(self.settings, self.sessions, self.escrow, self.delivery_account)

    def start_indexer(self) -> None:
        """Run the indexer in a thread until `stop`."""
        self.indexer = self.make_indexer()
        self._spawn("indexer", lambda: self.indexer.run_forever(self.stop_event))

    def _elected(self, name: str, role: str, work: Callable[[threading.Event], None]) -> None:
        """Run a singleton worker in a thread until `stop`, while this process holds its role
        (`backend.election`: one active instance per database, the others stand by)."""
        from backend.election import Seat, run_elected

        seat = self.seats.setdefault(name, Seat(role))
        self._spawn(
            name,
            lambda: run_elected(
                self.engine,
                seat,
                chain_id=self.chain.chain_id,
                escrow=self.escrow.address,
                stop=self.stop_event,
                work=work,
            ),
        )

    def start_agent(self) -> None:
        """Run the delivery agent in a thread until `stop`, as the one active agent."""
        self.agent = self.make_agent()
        self._elected("agent", "delivery", self.agent.run_forever)

    def start_notify(self, public_url: str | None = None) -> None:
        """Run the notification producer and its sender, each in a thread, until `stop`
        (`backend.notify`): a slow receiver holds up only other messages."""
        from backend.notify.service import dispatcher_for, producer_for

        producer = producer_for(self.settings, self.sessions, public_url or (lambda: self.url))
        dispatcher = dispatcher_for(self.settings, self.sessions)

        self._elected("notify", "notify", lambda ev: producer.run_forever(ev, self.chain.timestamp))
        self._spawn("notify-sender", lambda: dispatcher.run_forever(self.stop_event))

    def keeper_account(self) -> LocalAccount | None:
        """The keeper's key: `KAMENG_KEEPER_KEY`, or the development world's."""
        configured = self.settings.keeper_account()
        if configured is not None:
            return configured
        return self.dev.keeper if self.dev is not None else None

    def make_keeper(self) -> Any:
        """The keeper for this runtime, with its own chain gateway.

        Raises:
            RuntimeError_: no keeper key is configured.
        """
        from backend.gateway.gateway import Gateway
        from backend.keeper import Keeper

        account = self.keeper_account()
        if account is None:
            raise RuntimeError_(
                "no keeper key: set KAMENG_KEEPER_KEY to an account holding some gas money "
                "(it needs no role), or KAMENG_KEEPER=false to run without a keeper"
            )
        gateway = Gateway(
            self.sessions,
            self.chain,
            [account],
            bump_blocks=self.settings.delivery_bump_blocks,
            bump_percent=self.settings.delivery_bump_percent,
            max_fee_cap=self.settings.delivery_max_gas_price,
            reorg_depth=self.settings.reorg_depth,
        )
        return Keeper(
            self.sessions,
            gateway,
            account.address,
            self.escrow.address,
            batch_size=self.settings.keeper_batch_size,
        )

    def start_keeper(self) -> None:
        """Run the keeper in a thread until `stop`."""
        keeper = self.make_keeper()

        poll_s, chain_id = self.settings.keeper_poll_seconds, self.chain.chain_id
        self.keeper = keeper
        self._spawn(
            "keeper",
            lambda: keeper.run_forever(self.stop_event, self.chain.timestamp, poll_s, chain_id),
        )

    def advertised_rpc(self, public_url: str | None = None) -> str | None:
        """The JSON-RPC URL ``GET /chain`` names: the API's ``/rpc`` on the embedded chain, a
        development node's URL, or None."""
        if self.chain.kind == "embedded":
            return (public_url + "/rpc") if public_url else "/rpc"
        return self.advertise_rpc

    def app(self, *, domain: str | None = None, public_url: str | None = None) -> FastAPI:
        """The API for this runtime (its ``GET /health`` reports this runtime's workers)."""
        from backend.api import create_app

        app = create_app(
            self.settings,
            chain=self.chain,
            escrow=self.escrow,
            engine=self.engine,
            session_factory=self.sessions,
            suppliers=self.suppliers,
            domain=domain or "localhost",
            rpc_url=self.advertised_rpc(public_url),
        )
        app.state.ctx.workers = self.worker_report
        return app

    def start_api(
        self, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20.0
    ) -> str:
        """Serve the API with uvicorn in a thread; return its base URL once it listens.

        Raises:
            RuntimeError_: it did not start within `timeout`.
        """
        import uvicorn

        port = port or free_port()
        url = f"http://{host}:{port}"
        app = self.app(domain=f"{host}:{port}", public_url=url)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
        )
        self.server = uvicorn.Server(config)
        self._spawn("api", self.server.run)
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.errors or time.monotonic() > deadline:
                raise RuntimeError_(f"the API did not start on {url}: {self.errors or 'timeout'}")
            time.sleep(0.02)  # polling uvicorn's started flag, with a deadline
        self.url = url
        return url

    def start(
        self,
        *,
        api: bool = True,
        indexer: bool = True,
        agent: bool = True,
        notify: bool | None = None,
        keeper: bool | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> Runtime:
        """Start the chosen workers (`notify`, `keeper`: by default as the settings say; the
        keeper only where it has a key)."""
        if indexer:
            self.start_indexer()
        if agent:
            self.start_agent()
        if api:
            self.start_api(host, port)
        if self.settings.notify if notify is None else notify:
            self.start_notify()
        if keeper or (keeper is None and self.settings.keeper and self.keeper_account()):
            self.start_keeper()
        return self

    def check(self) -> None:
        """Re-raise the first error a worker died of.

        Raises:
            RuntimeError_: a worker stopped with an error.
        """
        if self.errors:
            raise RuntimeError_(f"a worker stopped: {self.errors[0]!r}") from self.errors[0]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker and wait for them."""
        self.stop_event.set()
        if self.server is not None:
            self.server.should_exit = True
        for thread in self.threads:
            thread.join(timeout)
        self.threads.clear()
        if self.indexer is not None:
            self.indexer.close()
        self.engine.dispose()
        if self.tempdir is not None:
            self.tempdir.cleanup()
            self.tempdir = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_dev_accounts(self, path: str | Path) -> Path:
        """Write the development world's keys to `path` (mode 0600; missing directories 0700).

        Raises:
            RuntimeError_: there is no development world (not an embedded chain).
        """
        if self.dev is None:
            raise RuntimeError_("development accounts exist only on the embedded chain")
        target = Path(path)
        private_dirs(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file left from before keeps its mode otherwise
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {
                    **self.dev.as_json(),
                    "escrow": self.escrow.address,
                    "chain_id": self.chain.chain_id,
                    "api": self.url,
                },
                fh,
                indent=2,
            )
        return target


def demo_codes(n: int, start: int = 0) -> list[bytes]:
    """`n` distinct fake card codes (tests and demo only)."""
    return [
        f"KMG-{i:06d}-{keccak(i.to_bytes(8, 'big')).hex()[:8].upper()}".encode()
        for i in range(start, start + n)
    ]
