"""The `kameng` command line: one typer app; each module below adds its commands."""

from __future__ import annotations

from backend.cli import bench_cmd, buyer, chain_cmds, demo, serve, supplier  # noqa: F401
from backend.cli import index_cmd  # noqa: F401 - registers `kameng index`
from backend.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `kameng` script."""
    app()
