"""`kameng demo`: a scripted story on the embedded chain, printed step by step."""

from __future__ import annotations

import typer
from eth_utils import keccak
from rich.table import Table

from backend.cli.app import app, console
from contracts.chain import embedded_chain
from contracts.client import TxResult
from contracts.encoding import commitment, leaf
from contracts.merkle import verify
from contracts.testing import commit_codes, demo_codes, make_world


def _step(table: Table, what: str, res: TxResult) -> None:
    console.print(f"  [green]✓[/green] {what:<46} tx {res.tx_hash[:18]}…  gas {res.gas_used:>9,}")
    table.add_row(what, res.tx_hash, f"{res.gas_used:,}")


@app.command("demo")
def demo_cmd(
    codes: int = typer.Option(20, help="How many codes the supplier commits."),
) -> None:
    """Deploy the escrow on the embedded chain and run an order's whole life, with tx and gas."""
    from contracts.compiler import build

    if build():
        console.print("compiled the contracts")
    chain = embedded_chain()
    console.rule("[bold]kameng demo[/bold] on the embedded chain (eth-tester, py-evm, Prague)")
    world = make_world(chain, buyers=2)
    escrow = world.escrow
    table = Table("step", "tx hash", "gas", title="What happened on-chain")
    console.print(f"escrow deployed at {escrow.address}; supplier authorized for sku {world.sku.hex()[:16]}…")

    listing_id, res = escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**16,
                                            delivery_window=3600, dispute_window=86_400,
                                            bond_bps=2000, metadata_uri="ipfs://steam-wallet-50")
    _step(table, f"supplier opens listing {listing_id} at 0.01 ETH", res)
    _step(table, "supplier posts a 1 ETH bond", escrow.deposit_bond(world.supplier, 10**18))
    batch = demo_codes(codes)
    salts, tree = commit_codes(world, listing_id, batch)
    console.print(f"  [green]✓[/green] supplier commits {codes} salted codes, root {tree.root.hex()[:16]}…")

    buyer, second = world.buyers
    from nacl.public import PrivateKey, SealedBox

    key = PrivateKey.generate()
    oid, order, res = escrow.buy(buyer, listing_id, 2, max_unit_price=10**16,
                                 buyer_pubkey=bytes(key.public_key))
    _step(table, f"buyer pays 0.02 ETH for 2 codes (order {oid})", res)
    sealed = SealedBox(key.public_key).encrypt(b"\n".join(batch[0:2]))
    (order,), res = escrow.deliver(world.delivery_key, [(oid, order, keccak(sealed))])
    _step(table, "delivery key posts the sealed release's digest", res)
    opened = SealedBox(key).decrypt(sealed).split(b"\n")
    ok = all(verify(tree.proof(i), tree.root, leaf(i, commitment(salts[i], opened[i]))) for i in range(2))
    console.print(f"  [green]✓[/green] buyer opens the release and checks both codes against the root: {ok}")
    _step(table, "buyer confirms (钱货两清): supplier paid", escrow.confirm(buyer, oid, order))

    oid2, order2, res = escrow.buy(second, listing_id, 1, max_unit_price=10**16,
                                   buyer_pubkey=bytes(PrivateKey.generate().public_key))
    _step(table, f"second buyer pays for 1 code (order {oid2})", res)
    chain.travel_to(order2.deadline + 1)
    console.print("  … the supplier misses the delivery deadline")
    _step(table, "second buyer reclaims the payment", escrow.refund(second, oid2, order2))
    _step(table, "supplier withdraws its earnings", escrow.withdraw(world.supplier))
    _step(table, "second buyer withdraws the refund", escrow.withdraw(second))
    free, reserved = escrow.bond_of(world.supplier.address)
    console.print(table)
    console.print(f"supplier bond: free {free / 1e18:.4f} ETH, reserved {reserved / 1e18:.4f} ETH")
