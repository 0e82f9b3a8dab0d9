"""`kameng serve`: the API, the delivery agent and the indexer.

By default a supervisor process keeps the chain, the indexer and the delivery agent, and runs
the API in a child process that it restarts when it dies (`backend.supervisor`); with
``--single-process`` everything runs in one process, as the demo does.

With no options it needs nothing: an embedded chain, a fresh escrow, a development world whose
keys go to ``var/dev-accounts.json`` (so `kameng buyer ... --dev buyer0` and
`kameng supplier ... --dev supplier` work at once), SQLite in a temporary directory, and the
chain's JSON-RPC at ``/rpc``. ``--rpc-url`` alone deploys the same development world on a
development node (anvil). ``--rpc-url``, ``--database-url`` and ``--manifest`` (or
``--escrow``) point it at a real node, PostgreSQL and a deployed escrow; each may also come
from ``kameng.toml``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.common import ManifestOption, deployment, fail, from_config

if TYPE_CHECKING:
    from backend.runtime import Runtime

#: Demo codes a development listing starts with (`--dev-stock`).
DEV_STOCK = 100
#: The first demo-code number of that stock: far from the numbers tests and people upload.
DEV_STOCK_FIRST = 900_000


def is_local_url(url: str) -> bool:
    """Whether a node URL points at this machine (loopback)."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url",
            envvar="KAMENG_RPC_URL",
            help="A JSON-RPC node; default: the embedded chain.",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="KAMENG_DATABASE_URL",
            help="SQLAlchemy URL (sqlite:///file.db, postgresql://...); default: SQLite.",
        ),
    ] = None,
    escrow: Annotated[
        str | None,
        typer.Option(
            "--escrow",
            envvar="KAMENG_ESCROW_ADDRESS",
            help="A deployed escrow (else a dev world is deployed).",
        ),
    ] = None,
    manifest: ManifestOption = None,
    supplier_key_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--supplier-key-file",
            help="A supplier's private key file; its uploads are committed by this backend.",
        ),
    ] = None,
    start_block: Annotated[
        int, typer.Option(help="Block to start indexing at (the deployment).")
    ] = 0,
    dev_accounts: Annotated[
        Path, typer.Option(help="Where to write the embedded chain's dev keys.")
    ] = Path("var/dev-accounts.json"),
    dev_stock: Annotated[
        int,
        typer.Option(
            min=0,
            help="Demo codes the development listing starts with, so the store has something "
            "to sell (0 for an empty store).",
        ),
    ] = DEV_STOCK,
    only: Annotated[
        str,
        typer.Option(
            "--only",
            help="Which roles this process runs: 'all'; 'api' (stateless: run as many as you "
            "like behind a load balancer, sharing PostgreSQL); or 'worker' (indexer, delivery "
            "agent, keeper, notifications, no HTTP: run two or more, one of each is elected "
            "active by PostgreSQL advisory locks and a standby takes over if it dies).",
        ),
    ] = "all",
    indexer: Annotated[bool, typer.Option(help="Run the indexer in this process.")] = True,
    agent: Annotated[bool, typer.Option(help="Run the delivery agent in this process.")] = True,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The URL clients use (its host is the SIWE domain); default: http://HOST:PORT."
        ),
    ] = None,
    single_process: Annotated[
        bool,
        typer.Option(
            "--single-process",
            help="Run the API in the same process as the chain, the indexer and the agent "
            "(a crash of the API then takes them down too). By default the API runs in a "
            "child process that is restarted on the same port when it dies.",
        ),
    ] = False,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development on a node on this machine (anvil): allow the public development "
            "secrets and, without --escrow, deploy a development world. Implied on the "
            "embedded chain; refused for a node elsewhere.",
        ),
    ] = False,
    api_restart_delay: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Seconds before restarting a crashed API worker; doubles with each crash in "
            "a row, up to 30 s, and resets once a worker stays up 30 s.",
        ),
    ] = 0.5,
) -> None:
    """Run the API, the delivery agent and the indexer (zero configuration on the embedded
    chain; on any other node, production: it refuses to start without real secrets).

    The API runs in a supervised child process, restarted when it dies, unless
    --single-process is given.
    """
    import logging

    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from backend.config import Settings
    from backend.runtime import Runtime, load_account
    from backend.supervisor import ApiSupervisor
    from contracts.errors import ChainError, KamengError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if only not in ("all", "api", "worker"):
        raise fail(f"--only {only!r}: choose all, api or worker", 2)
    if only != "all" and (rpc_url is None and from_config(None, "rpc_url") is None):
        raise fail(
            "--only splits kameng across processes that share a node and PostgreSQL: pass "
            "--rpc-url, --database-url and --manifest (or --escrow)",
            2,
        )
    if only == "api":
        indexer = agent = False
    rpc_url = from_config(rpc_url, "rpc_url")
    database_url = from_config(database_url, "database_url")
    if manifest is not None and rpc_url is None:
        raise fail("--manifest names a deployment on a node: pass --rpc-url too", 2)
    found = deployment(manifest, escrow, start_block, rpc_url) if rpc_url is not None else None
    if found is not None:
        escrow, start_block = found.escrow, found.start_block
    try:
        if dev and rpc_url is not None and not is_local_url(rpc_url):
            raise fail(
                f"--dev is for a development node on this machine, not {rpc_url}: a real "
                "network needs real secrets (KAMENG_MASTER_KEY, KAMENG_FINGERPRINT_KEY, "
                "KAMENG_SESSION_KEY, KAMENG_DELIVERY_KEY)",
                2,
            )
        if rpc_url is not None and escrow is None and not dev:
            raise fail(
                "without --escrow, serve deploys a development world, which needs --dev and a "
                "development node on this machine such as anvil; for a real network pass "
                "--escrow ADDRESS and set the production secrets",
                2,
            )
        # Production is the default; the development secrets only on the embedded chain or
        # with --dev on a local node.
        settings = Settings(environment="development") if rpc_url is None or dev else Settings()
        if rpc_url is None:
            console.print("starting the embedded chain and deploying the escrow…")
            runtime = Runtime.embedded(settings, database_url=database_url)
        elif escrow is None:
            console.print(f"deploying a development world on {rpc_url}…")
            try:
                runtime = Runtime.dev_node(settings, rpc_url=rpc_url, database_url=database_url)
            except ChainError as exc:
                raise fail(
                    f"{exc}. Without --escrow, serve deploys a development world, which needs a "
                    "development node such as anvil; for a real network pass --escrow ADDRESS",
                    2,
                ) from exc
        else:
            runtime = Runtime.connect(
                settings,
                rpc_url=rpc_url,
                database_url=database_url or settings.database_url,
                escrow=escrow,
                suppliers=[load_account(p) for p in supplier_key_file or []],
                start_block=start_block,
            )
        runtime.start(
            api=False,
            indexer=indexer,
            agent=agent,
            notify=False,
            keeper=False if only == "api" else None,
        )
    except KamengError as exc:
        raise fail(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise fail(
            f"cannot use the database ({type(exc).__name__}): start it, or fix --database-url"
        ) from exc
    url = (public_url or f"http://{host}:{port}").rstrip("/")
    runtime.url = url
    if settings.notify and only != "api":
        runtime.start_notify(url)
    if only == "worker":
        _run_worker(runtime)
        return
    supervisor = None
    if not single_process:
        supervisor = ApiSupervisor(
            runtime,
            host=host,
            port=port,
            domain=urlsplit(url).netloc,
            public_url=url,
            restart_delay=api_restart_delay,
        )
        try:
            supervisor.bind()
        except OSError as exc:
            runtime.stop()
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2) from exc
    table = Table(show_header=False, title="kameng serve")
    table.add_row("API", f"{url}  (OpenAPI: {url}/docs)")
    table.add_row(
        "chain",
        f"{runtime.chain.kind}, id {runtime.chain.chain_id}"
        + (f", JSON-RPC at {url}/rpc" if runtime.chain.kind == "embedded" else ""),
    )
    table.add_row("escrow", runtime.escrow.address)
    table.add_row("database", str(runtime.engine.url.render_as_string(hide_password=True)))
    table.add_row(
        "workers",
        ", ".join(w for w, on in (("indexer", indexer), ("delivery agent", agent)) if on) or "none",
    )
    table.add_row(
        "API process",
        "same process (--single-process)"
        if supervisor is None
        else "a child process, restarted on the same port if it dies",
    )
    notes: list[str] = []
    stocker: threading.Thread | None = None
    if runtime.dev is not None:
        written = runtime.write_dev_accounts(dev_accounts)
        table.add_row(
            "dev accounts",
            f"{written} (supplier, arbiter, buyer0..; listing {runtime.dev.listing_id})",
        )
        if only == "all":
            stocker = threading.Thread(
                target=_stock_dev_listing, args=(runtime, dev_stock, url), daemon=True
            )
        for role in ("supplier", "arbiter"):
            account = getattr(runtime.dev, role)
            notes.append(
                f"dev {role} key: 0x{bytes(account.key).hex()} ({account.address}; development "
                "only: import it in the web's development wallet with Key…)"
            )
    console.print(table)
    for line in notes:
        console.print(line, soft_wrap=True)
    if stocker is not None:
        stocker.start()  # the API answers at once; the stock follows in a second or two
    try:
        if supervisor is not None:
            supervisor.run()
        else:
            app_ = runtime.app(domain=urlsplit(url).netloc, public_url=url)
            uvicorn.run(app_, host=host, port=port, log_level="info", ws="none")
    finally:
        runtime.stop()


def _stock_dev_listing(runtime: Runtime, count: int, url: str) -> None:
    """Upload `count` demo codes to the development listing through the vault (committed
    on-chain as any upload is), then say so and how to stock more (runs beside the server)."""
    from backend.runtime import demo_codes
    from backend.vault.service import upload_codes

    dev = runtime.dev
    assert dev is not None
    listing = dev.listing_id
    hint = f"upload more at {url}/#/supplier or with `kameng supplier upload {listing} FILE`"
    if count == 0:
        console.print(f"listing {listing} is empty (--dev-stock 0): {hint}", soft_wrap=True)
        return
    # Codes from their own range, so that they never clash with codes a person uploads.
    data = b"\n".join(demo_codes(count, start=DEV_STOCK_FIRST))
    try:
        with runtime.sessions() as session:
            upload = upload_codes(
                session, runtime.escrow, dev.supplier, listing, data, runtime.settings
            )
    except Exception as exc:  # a development convenience: say why, keep serving
        console.print(
            f"[yellow]could not stock listing {listing}:[/yellow] {type(exc).__name__}: {exc}; "
            + hint,
            soft_wrap=True,
        )
        return
    console.print(
        f"listing {listing} stocked with {upload.count} demo codes; {hint}", soft_wrap=True
    )


def _run_worker(runtime: Runtime) -> None:
    """`kameng serve --only worker`: the workers, no HTTP, until SIGINT or SIGTERM."""
    import signal

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    names = ", ".join(sorted(runtime.worker_threads)) or "none"
    console.print(
        f"kameng worker: {names} on chain {runtime.chain.chain_id}, escrow "
        f"{runtime.escrow.address}; singletons are elected (Ctrl-C stops)",
        soft_wrap=True,
    )
    from backend.errors import BackendError

    try:
        while not done.wait(1.0):
            runtime.check()  # a worker that died takes the process down, for the supervisor
    except BackendError as exc:
        raise fail(f"{exc}; the other workers' standbys take over") from exc
    finally:
        runtime.stop()
