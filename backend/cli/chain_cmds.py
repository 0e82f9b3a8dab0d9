"""`kameng compile`: build the contract artifacts."""

from __future__ import annotations

import typer

from backend.cli.app import app, console, err_console
from contracts.errors import KamengError


@app.command("compile")
def compile_cmd(
    force: bool = typer.Option(False, "--force", help="Compile even if the artifacts are current."),
) -> None:
    """Compile the Solidity sources to contracts/artifacts (cached by source hash)."""
    from contracts.compiler import build, in_checkout

    try:
        ran = build(force=force)
    except KamengError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if not in_checkout():
        console.print("no Solidity sources here (an installed kameng): using the shipped artifacts")
    else:
        console.print(
            "compiled" if ran else "artifacts are current (source hash matches); nothing to do"
        )
