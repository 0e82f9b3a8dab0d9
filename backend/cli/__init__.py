"""The `kameng` command line: one typer app; each module below adds its commands."""

from __future__ import annotations

from backend.cli.app import app
from backend.cli import bench_cmd, chain_cmds, demo  # noqa: F401 - they register commands

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `kameng` script."""
    app()
