"""`kameng index`: mirror the escrow's events into SQLite or PostgreSQL, and follow the head."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from backend.cli.app import app, console, err_console
from backend.cli.common import ManifestOption, deployment
from contracts.errors import KamengError

if TYPE_CHECKING:
    from types import FrameType

    import indexer


@app.command("index")
def index_cmd(
    rpc_url: str = typer.Option(
        ..., "--rpc-url", envvar="KAMENG_RPC_URL", help="JSON-RPC URL of the node."
    ),
    database_url: str = typer.Option(
        ...,
        "--database-url",
        envvar="KAMENG_DATABASE_URL",
        help="sqlite:///file.db or postgresql://user@host/db",
    ),
    escrow: str | None = typer.Option(
        None, "--escrow", envvar="KAMENG_ESCROW_ADDRESS", help="The CodeEscrow address."
    ),
    manifest: ManifestOption = None,
    from_block: int = typer.Option(
        0, "--from-block", help="First block on an empty database (default: the manifest's)."
    ),
    finality_depth: int = typer.Option(
        0,
        "--finality-depth",
        help="Blocks below the head that may still reorg (0 on the embedded chain; ~12 on "
        "mainnet). A deeper reorg stops the indexer.",
    ),
    once: bool = typer.Option(False, "--once", help="Index up to the head, then exit."),
    poll_interval: float = typer.Option(0.1, "--poll-interval", help="Seconds between polls."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="eth_getLogs requests in flight."
    ),
    max_range: int | None = typer.Option(
        None, "--max-range", help="Largest eth_getLogs block range."
    ),
    log_json: bool = typer.Option(
        False, "--log-json", help="Print progress as JSON lines instead of a progress bar."
    ),
) -> None:
    """Index the escrow into SQL, then follow the chain's head until interrupted."""
    from indexer import Indexer
    from indexer.errors import IndexerError

    found = deployment(manifest, escrow, from_block, rpc_url)
    if found is None:
        err_console.print(
            "[red]error:[/red] no escrow: pass --manifest (written by `kameng deploy`) or "
            "--escrow, or set KAMENG_MANIFEST or KAMENG_ESCROW_ADDRESS"
        )
        raise typer.Exit(2)
    escrow, from_block = found.escrow, found.start_block
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    reporter = _JsonReporter() if log_json else _RichReporter()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        ix = Indexer(
            rpc_url,
            database_url,
            escrow,
            start_block=from_block,
            finality_depth=finality_depth,
            poll_interval=poll_interval,
            concurrency=concurrency,
            max_range=max_range,
            on_progress=reporter.update,
        )
    except (KamengError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    reporter.start()
    try:
        if once:
            ix.run_once()
        else:
            ix.run_forever(stop)
    except IndexerError as exc:
        reporter.stop()
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        reporter.stop()
        status = ix.status()
        ix.close()
    reporter.done(status)


class _RichReporter:
    """A progress bar over the catch-up, then a live status line while following the head."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[mode]:<9}"),
            BarColumn(),
            TextColumn("block {task.completed:,.0f}/{task.total:,.0f}"),
            TextColumn("{task.fields[events]:,} events  {task.fields[eps]:,.0f}/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None
        self.first: int | None = None

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def update(self, p: indexer.Progress) -> None:
        if self.task is None:
            self.first = p.checkpoint or 0
            self.task = self.progress.add_task(
                "index", total=max(1, (p.head or 0)), mode=p.mode, events=0, eps=0.0
            )
        eps = p.events / p.elapsed if p.elapsed > 0 else 0.0
        self.progress.update(
            self.task,
            completed=p.checkpoint or 0,
            total=max(p.head or 0, p.checkpoint or 0, 1),
            mode=p.mode,
            events=p.events,
            eps=eps,
        )

    def done(self, status: dict[str, Any]) -> None:
        console.print(
            f"stopped at block {status['checkpoint']} with {status['events']:,} events "
            f"applied ({status['reorgs']} reorgs, {status['retries']} retries)"
        )


class _JsonReporter:
    """One JSON object per line on stdout: for scripts and tests."""

    def start(self) -> None:
        print(json.dumps({"mode": "start"}), flush=True)

    def stop(self) -> None:
        pass

    def update(self, p: indexer.Progress) -> None:
        print(
            json.dumps(
                {"mode": p.mode, "checkpoint": p.checkpoint, "head": p.head, "events": p.events}
            ),
            flush=True,
        )

    def done(self, status: dict[str, Any]) -> None:
        print(json.dumps({"mode": "done", **status}), flush=True)
