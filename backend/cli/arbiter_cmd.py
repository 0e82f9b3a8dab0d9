"""`kameng arbiter queue / open / rule / fallback`: the dispute handler's workflow.

1. ``queue``: open disputes, oldest first, with their arbitration deadlines and time left;
2. ``open ORDER_ID``: pull the order's evidence bundle, save it, and print the verifier's
   checklist (run here, against the chain, not trusted from the server);
3. ``rule ORDER_ID --buyer-bps N [--slash-bps M] --reason TEXT``: rule a split, citing the
   bundle's hash on-chain, and show both parties' new balances.

``fallback ORDER_ID`` applies the arbitration-timeout split (anyone may, after the deadline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.common import (
    DEFAULT_API,
    ApiOption,
    DevOption,
    KeyFileOption,
    KeystoreOption,
    RpcOption,
    connect,
    describe_error,
    fail,
    load_wallet,
    order_from_chain,
)
from backend.cli.evidence_cmd import fetch_bundle, print_checklist, print_outcome, save, verify_file
from backend.client import ApiError
from contracts.encoding import OrderState
from contracts.errors import KamengError

arbiter_app = typer.Typer(
    help="Dispute queue, evidence bundles checked against the chain, rulings.",
    no_args_is_help=True,
)
app.add_typer(arbiter_app, name="arbiter")


def _left(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{s // 86400}d {s % 86400 // 3600:02d}h {s % 3600 // 60:02d}m"


@arbiter_app.command("queue")
def queue(
    include_ruled: Annotated[bool, typer.Option(help="Also list ruled disputes.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Open disputes, oldest first, with their deadlines (chain time)."""
    from backend.client import KamengClient

    wallet = load_wallet(key_file, dev, keystore=keystore)
    client = KamengClient(api)
    try:
        client.sign_in(wallet)
        rows = client.disputes(include_ruled=include_ruled)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    table = Table(title=f"{len(rows)} dispute(s), oldest first", title_justify="left")
    for name in ("order", "opened", "deadline", "left"):
        table.add_column(name, no_wrap=True)
    for name in ("amount", "bond", "evidence", "state"):
        table.add_column(name)
    for d in rows:
        state = "ruled" if d.ruled else ("[red]overdue[/red]" if d.overdue else "open")
        table.add_row(
            str(d.order_id),
            str(d.opened_at),
            str(d.arbitration_deadline),
            _left(d.seconds_left),
            str(d.amount),
            str(d.bond),
            str(1 + len(d.evidence)),
            state,
        )
    console.print(table)
    if any(d.overdue for d in rows):
        console.print("  overdue disputes can be closed by anyone: `kameng arbiter fallback ID`")


@arbiter_app.command("open")
def open_(
    order_id: Annotated[int, typer.Argument(help="The disputed order.")],
    out: Annotated[Path | None, typer.Option(help="Where to save the bundle.")] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Pull a dispute's evidence bundle, save it, and check every claim against the chain."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        bundle = fetch_bundle(s, order_id)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    target = save(bundle, out)
    console.print(
        f"saved to {target}; rule with `kameng arbiter rule {order_id} --bundle {target}`"
    )
    checklist = verify_file(target, s.escrow.chain)
    print_checklist(checklist, title=f"order {order_id}")
    if not checklist.ok:
        raise typer.Exit(1)


@arbiter_app.command("rule")
def rule(
    order_id: Annotated[int, typer.Argument(help="The disputed order.")],
    buyer_bps: Annotated[
        int, typer.Option(min=0, max=10_000, help="The buyer's share of the payment (bps).")
    ],
    reason: Annotated[
        str, typer.Option(help="A short reason code, ≤ 32 bytes (e.g. code-already-redeemed).")
    ],
    slash_bps: Annotated[
        int, typer.Option(min=0, max=10_000, help="Share of the reserved bond paid to the buyer.")
    ] = 0,
    bundle: Annotated[
        Path | None,
        typer.Option(help="The bundle you read (default: pull a fresh one)."),
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Rule a split in basis points, with an optional slash of the bond; the ruling cites the
    bundle's hash. Refuses a bundle that fails verification."""
    from backend.evidence.arbiter import rule_on_bundle

    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    if bundle is None:
        try:
            bundle = save(fetch_bundle(s, order_id), None)
        except ApiError as exc:
            raise fail(str(exc)) from exc
    checklist = verify_file(bundle, s.escrow.chain)
    if checklist.order_id != order_id:
        raise fail(f"{bundle} is the bundle of order {checklist.order_id}, not {order_id}")
    if not checklist.ok:
        print_checklist(checklist, title=f"order {order_id}")
        raise fail("not ruling on a bundle that fails verification")
    try:
        result = rule_on_bundle(
            s.escrow,
            s.wallet,
            bundle.read_bytes(),
            buyer_bps=buyer_bps,
            slash_bps=slash_bps,
            reason=reason,
            checklist=checklist,
        )
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(
        f"order {order_id}: buyer {buyer_bps} bps, slash {slash_bps} bps, reason {reason!r}, "
        f"citing bundle 0x{(checklist.bundle_hash or b'').hex()}"
    )
    print_outcome(result, "ruled")


@arbiter_app.command("fallback")
def fallback(
    order_id: Annotated[int, typer.Argument(help="The disputed order.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Apply the arbitration-timeout fallback to a dispute nobody ruled on by its deadline:
    the payment is split equally, the bond is freed. Anyone may."""
    from backend.evidence.arbiter import apply_fallback

    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    order = order_from_chain(s.escrow, order_id)
    if order is None or order.state != OrderState.DISPUTED:
        raise fail(f"order {order_id} is not disputed on-chain")
    now = s.escrow.chain.timestamp()
    if now < order.deadline:  # the next block is at least one second later
        raise fail(
            f"the arbitration deadline {order.deadline} has not passed (chain time {now}, "
            f"{_left(order.deadline - now)} to go)"
        )
    try:
        result = apply_fallback(s.escrow, s.wallet, order_id, order)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    print_outcome(result, "fallback applied (50/50, no slash)")
