"""The root typer app and the console every command prints through."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="kameng",
    help="kameng: an exchange for virtual goods with escrowed payment and provable delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
