"""The `kameng` command line: one typer app; each module below adds its commands."""

from __future__ import annotations

from backend.cli import (  # noqa: F401
    admin_cmd,  # noqa: F401 - `kameng admin ...`
    arbiter_cmd,  # noqa: F401 - `kameng arbiter ...`
    bench_cmd,
    buyer,
    chain_cmds,
    coupon_cmd,  # noqa: F401 - `kameng supplier coupon`, `kameng supplier revoke-coupon`
    demo,
    deploy_cmd,  # noqa: F401 - `kameng deploy`
    evidence_cmd,  # noqa: F401 - `kameng evidence`, `kameng verify`
    index_cmd,  # noqa: F401 - registers `kameng index`
    keeper_cmd,  # noqa: F401 - `kameng keeper`
    keys_cmd,  # noqa: F401 - `kameng keys ...`
    notify_cmd,  # noqa: F401 - `kameng notify ...`
    recover_cmd,  # noqa: F401 - `kameng recover`
    serve,
    supplier,
    vault_cmd,  # noqa: F401 - `kameng vault ...`
)
from backend.cli.app import app
from backend.limits import pin_recursion_limit

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `kameng` script.

    Every command is imported by now: put back the recursion limit a dependency raised at
    import (`backend.limits.pin_recursion_limit`) before running one.
    """
    pin_recursion_limit()
    app()
