"""`kameng recover`: a buyer gets back what it paid for from the chain alone (issue 16).

It needs a JSON-RPC node, the escrow's address and the buyer's wallet: no kameng backend, no
database, no API. Codes are masked unless ``--reveal``; ``--out`` writes them all, in clear, to a
file only this user can read (0600).

Exit status: 0 when every order was read (recovered, not delivered, or delivered off-chain); 1
when an order failed (its release does not verify, or it was paid with a key not derived from
this wallet; the others are still reported), when the address holds no escrow on the node's
chain, when the node cannot be reached, or when the wallet has no order on the escrow (one line
saying so); 2 for a missing or unreadable wallet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from eth_utils import is_address, to_checksum_address
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from web3.exceptions import Web3Exception

from backend.cli.app import app, console, err_console
from backend.cli.buyer import show_codes
from backend.cli.common import (
    DevOption,
    KeyFileOption,
    KeystoreOption,
    fail,
    load_wallet,
    write_private,
)
from backend.release import VerifiedRelease
from contracts.errors import ChainError, KamengError

if TYPE_CHECKING:
    from backend.recover import Recovery

STATUS_TEXT = {
    "recovered": "[green]recovered[/green]",
    "not-delivered": "[yellow]not delivered[/yellow]",
    "off-chain": "[yellow]delivered off-chain[/yellow]",
    "failed": "[red]FAILED[/red]",
}


class _Progress:
    """Shows the scan's progress on a terminal (stderr), nothing elsewhere."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("scanning {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} blocks"),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(f"for your {stage}", total=total)
        self.bar.update(self.tasks[stage], completed=done)


def _report(found: Recovery, reveal: bool) -> None:
    for o in found.orders:
        console.print(
            f"order [bold]{o.order_id}[/bold] (listing {o.listing_id}, {o.quantity} code(s)): "
            f"{STATUS_TEXT[o.status]}: {o.detail}",
            soft_wrap=True,
        )
    for o in found.orders:
        if o.status == "recovered":
            show_codes(VerifiedRelease(order_id=o.order_id, codes=o.codes), reveal)
    codes = sum(len(o.codes) for o in found.orders)
    console.print(
        f"{codes} code(s) of {found.count('recovered')} order(s) recovered from the chain; "
        f"{found.count('off-chain')} delivered off-chain, {found.count('not-delivered')} not "
        f"delivered, {found.count('failed')} failed (blocks {found.from_block}..{found.to_block})"
    )


@app.command("recover")
def recover(
    rpc_url: Annotated[
        str,
        typer.Option("--rpc-url", envvar="KAMENG_RPC_URL", help="A JSON-RPC node of the chain."),
    ],
    escrow: Annotated[
        str, typer.Option("--escrow", help="The address of the escrow you paid (0x...).")
    ],
    from_block: Annotated[
        int | None,
        typer.Option(
            "--from-block",
            min=0,
            help="First block to scan; default: the escrow's deployment block (found by "
            "bisection; block 0 on a node that keeps no old state).",
        ),
    ] = None,
    reveal: Annotated[bool, typer.Option(help="Print the codes in clear.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write every order and its codes, in clear, to this file (0600)."
        ),
    ] = None,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Recover the codes of every order your wallet paid, from the chain alone (no kameng server).

    For each order delivered on-chain it re-derives the order's key from your wallet, rebuilds
    the release from its ReleasePublished event and checks it: the digest in OrderDelivered, the
    sealed box opening, and every code against its commitment and the batch's Merkle root.
    """
    from backend.recover import NoEscrowError
    from backend.recover import recover as recover_orders
    from contracts.chain import rpc_chain
    from contracts.client import EscrowClient

    if not is_address(escrow):
        raise fail(f"--escrow {escrow[:60]!r} is not an address (0x and 40 hex digits)")
    wallet = load_wallet(key_file, dev, keystore=keystore)
    try:
        client = EscrowClient(rpc_chain(rpc_url), to_checksum_address(escrow))
        progress = _Progress()
        with progress.bar:
            found = recover_orders(client, wallet, from_block, progress=progress)
    except (NoEscrowError, ChainError) as exc:
        raise fail(str(exc)) from exc
    except (KamengError, OSError, Web3Exception) as exc:  # the node failed during the scan
        raise fail(f"reading {rpc_url} failed: {type(exc).__name__}: {exc}") from exc
    if not found.orders:
        raise fail(
            f"no orders by {wallet.address} on escrow {found.escrow} (chain {found.chain_id}, "
            f"blocks {found.from_block}..{found.to_block}): nothing to recover; check the "
            "wallet, or --from-block"
        )
    _report(found, reveal)
    if out is not None:
        write_private(out, json.dumps(found.as_json(), indent=2).encode())
        console.print(f"wrote {len(found.orders)} order(s) with their codes to {out} (0600)")
    failed = [o.order_id for o in found.orders if o.status == "failed"]
    if failed:
        raise fail(
            f"{len(failed)} order(s) could not be recovered ({', '.join(map(str, failed))}); "
            "each one's line above says why"
        )
