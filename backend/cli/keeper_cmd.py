"""`kameng keeper`: the keeper on its own (it also runs inside `kameng serve`)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from backend.cli.app import app, console
from backend.cli.common import ManifestOption, deployment, fail

if TYPE_CHECKING:
    from types import FrameType


@app.command("keeper")
def keeper_cmd(
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", envvar="KAMENG_RPC_URL", help="JSON-RPC URL of the node.")
    ],
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            envvar="KAMENG_DATABASE_URL",
            help="The database `kameng serve` (or `kameng index`) keeps the mirror in.",
        ),
    ],
    escrow: Annotated[
        str | None,
        typer.Option("--escrow", envvar="KAMENG_ESCROW_ADDRESS", help="The CodeEscrow address."),
    ] = None,
    manifest: ManifestOption = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev", help="A development node: the public development secrets are allowed."
        ),
    ] = False,
) -> None:
    """Settle delivered orders whose dispute window has closed, in batches, and resolve disputes
    past their arbitration deadline, until interrupted.

    It signs with KAMENG_KEEPER_KEY: any account holding some gas money (it calls only
    functions anyone may call, so it needs no role). It reads due work from the mirror that
    `kameng serve` or `kameng index` keeps in the same database, with the same settings as
    serve. On PostgreSQL only one keeper acts at a time; another one stands by.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from backend.config import Settings
    from backend.db import make_engine, migrate, session_factory
    from backend.errors import ConfigError
    from backend.gateway.gateway import Gateway
    from backend.keeper import Keeper
    from contracts.chain import rpc_chain
    from contracts.errors import KamengError

    found = deployment(manifest, escrow, 0, rpc_url)
    if found is None:
        raise fail("no escrow: pass --manifest (written by `kameng deploy`) or --escrow", 2)
    escrow = found.escrow
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = Settings(environment="development") if dev else Settings()
        account = settings.keeper_account()
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc
    if account is None:
        raise fail(
            "no keeper key: set KAMENG_KEEPER_KEY to the private key of an account with some "
            "gas money (it needs no role)",
            2,
        )
    try:
        chain = rpc_chain(rpc_url)
        engine = make_engine(database_url)
        migrate(engine)
    except KamengError as exc:
        raise fail(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise fail(f"cannot use the database ({type(exc).__name__}): fix --database-url") from exc
    sessions = session_factory(engine)
    gateway = Gateway(
        sessions,
        chain,
        [account],
        bump_blocks=settings.delivery_bump_blocks,
        bump_percent=settings.delivery_bump_percent,
        max_fee_cap=settings.delivery_max_gas_price,
        reorg_depth=settings.reorg_depth,
    )
    keeper = Keeper(
        sessions, gateway, account.address, escrow, batch_size=settings.keeper_batch_size
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    console.print(
        f"keeper {account.address} on chain {chain.chain_id}, escrow {escrow}: "
        "settling due orders and resolving timed-out disputes (Ctrl-C stops)"
    )

    keeper.run_forever(stop, chain.timestamp, settings.keeper_poll_seconds, chain.chain_id)
    engine.dispose()
    console.print("keeper stopped")
