"""`kameng serve`: the API, the delivery agent and the indexer in one process.

With no options it needs nothing: an embedded chain, a fresh escrow, a development world whose
keys go to ``var/dev-accounts.json`` (so `kameng buyer ... --dev buyer0` and
`kameng supplier ... --dev supplier` work at once), SQLite in a temporary directory, and the
chain's JSON-RPC at ``/rpc``. ``--rpc-url`` alone deploys the same development world on a
development node (anvil). ``--rpc-url``, ``--database-url`` and ``--escrow`` point it at a real
node, PostgreSQL and a deployed escrow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.common import fail


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
    indexer: Annotated[bool, typer.Option(help="Run the indexer in this process.")] = True,
    agent: Annotated[bool, typer.Option(help="Run the delivery agent in this process.")] = True,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The URL clients use (its host is the SIWE domain); default: http://HOST:PORT."
        ),
    ] = None,
) -> None:
    """Run the API, the delivery agent and the indexer in one process (zero configuration)."""
    import logging

    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from backend.config import Settings
    from backend.runtime import Runtime, load_account
    from contracts.errors import ChainError, KamengError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings()
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
        runtime.start(api=False, indexer=indexer, agent=agent)
    except KamengError as exc:
        raise fail(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise fail(
            f"cannot use the database ({type(exc).__name__}): start it, or fix --database-url"
        ) from exc
    url = (public_url or f"http://{host}:{port}").rstrip("/")
    runtime.url = url
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
    if runtime.dev is not None:
        written = runtime.write_dev_accounts(dev_accounts)
        table.add_row(
            "dev accounts",
            f"{written} (supplier, arbiter, buyer0..; listing {runtime.dev.listing_id})",
        )
    console.print(table)
    app_ = runtime.app(domain=urlsplit(url).netloc, public_url=url)
    try:
        uvicorn.run(app_, host=host, port=port, log_level="info", ws="none")
    finally:
        runtime.stop()
