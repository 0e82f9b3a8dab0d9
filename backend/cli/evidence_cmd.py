"""`kameng evidence ORDER_ID`, `kameng verify BUNDLE` and `kameng buyer prove-bad-code ORDER_ID`.

``evidence`` pulls an order's bundle from the API (its buyer, its supplier or an arbiter may),
optionally adding the buyer's per-order secret (re-derived from the wallet) or the supplier's
codes first, saves it byte for byte and checks it against the chain. With ``--escrow`` (and
``--rpc-url``) it builds the bundle itself from the chain alone, with no backend: the release
comes from the chain when the order was delivered with ``deliverOnChain``, and the buyer's
secret from the wallet or from a file the buyer handed to the arbiter. ``verify`` needs nothing
but the bundle and a node: it prints one line per claim and exits 1 when any claim fails.
``prove-bad-code`` wins an order without a judge when a released code does not match its
commitment (docs/PROTOCOL.md, "Proof of a bad code").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.buyer import buyer_app
from backend.cli.common import (
    DEFAULT_API,
    ApiOption,
    DevOption,
    KeyFileOption,
    KeystoreOption,
    RpcOption,
    Session,
    connect,
    current_order,
    describe_error,
    fail,
    load_wallet,
    write_private,
)
from backend.client import ApiError, answer_json
from contracts.chain import rpc_chain
from contracts.errors import KamengError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from backend.api.routes.evidence import BundlePublic
    from backend.evidence.arbiter import Outcome
    from backend.evidence.bundle import Built
    from backend.evidence.verify import Checklist
    from contracts.chain import Chain

EVIDENCE_DIR = Path("var/evidence")
_ICONS = {
    "pass": "[green]✓ pass[/green]",
    "fail": "[red]✗ FAIL[/red]",
    "skip": "[yellow]- skip[/yellow]",
}


# ---------------------------------------------------------------- API adapter


def fetch_bundle(s: Session, order_id: int, *, with_additions: bool = True) -> BundlePublic:
    """GET /evidence/orders/{id}, signed by the session's wallet (adapter over `KamengClient`).

    Raises:
        ApiError: refused (403 for a wallet that is neither party nor arbiter, 404 unknown).
    """
    from backend.api.routes.evidence import BundlePublic

    response = s.api.request(
        "GET",
        f"/evidence/orders/{order_id}",
        params={"with_additions": with_additions},
        signer=s.wallet,
    )
    return BundlePublic.model_validate(answer_json(response))


def post_addition(s: Session, order_id: int, kind: str, body: dict[str, object]) -> int:
    """POST one of the parties' additions; returns how many codes were attached.

    Raises:
        ApiError: refused (not the party, not the order's key, codes outside the order).
    """
    response = s.api.request(
        "POST", f"/evidence/orders/{order_id}/{kind}", json=body, signer=s.wallet
    )
    return int(answer_json(response)["codes"])


def save(bundle: BundlePublic, out: Path | None) -> Path:
    """Write a bundle's exact bytes to `out` (default ``var/evidence/ORDER.json``)."""
    target = out or EVIDENCE_DIR / f"{bundle.order_id}.json"
    write_private(target, bundle.document.encode("utf-8"))
    return target


# ---------------------------------------------------------------- printing


def print_checklist(checklist: Checklist, title: str = "evidence bundle") -> None:
    """One line per claim, then what the bundle establishes."""
    table = Table("", "claim", "detail", title=title, title_justify="left")
    for c in checklist.claims:
        table.add_row(_ICONS[c.status], c.name, c.detail)
    console.print(table)
    for f in checklist.findings:
        against = f" [bold](against the {f.against})[/bold]" if f.against else ""
        console.print(f"  • {f.detail}{against}")
    failed = checklist.failed()
    if failed:
        console.print(
            f"[red]✗ {len(failed)} claim(s) failed:[/red] "
            + ", ".join(c.name for c in failed)
            + " — this bundle does not say what the chain says"
        )
    else:
        skipped = [c.name for c in checklist.claims if c.status == "skip"]
        extra = f" ({', '.join(skipped)} need a party's addition)" if skipped else ""
        console.print(f"[green]✓ every claim checks against the chain[/green]{extra}")
    if checklist.self_hash:
        console.print(f"  selfHash {checklist.self_hash}")
    if checklist.bundle_hash is not None:
        console.print(f"  bundle hash 0x{checklist.bundle_hash.hex()} (what a ruling cites)")


def print_outcome(result: Outcome, what: str) -> None:
    """What a ruling gave each party, and their balances now."""
    tx = result.tx
    console.print(
        f"  [green]✓[/green] {what}: tx {tx.tx_hash} block {tx.block_number} gas {tx.gas_used:,}"
    )
    console.print(
        f"  buyer credited {result.buyer_amount} + bond {result.slashed}, balance now "
        f"{result.buyer_balance}"
    )
    free, reserved = result.supplier_bond
    console.print(
        f"  supplier credited {result.supplier_amount}, balance now {result.supplier_balance}; "
        f"bond free {free}, reserved {reserved}"
    )


def read_order_secret(path: Path) -> bytes:
    """The buyer's per-order secret from a file: 0x hex of 32 bytes (as the bundle's
    ``additions.buyer.orderSecret`` writes it).

    Raises:
        typer.Exit: the file cannot be read or does not hold 32 bytes of hex (its content is
            never printed).
    """
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the order secret file {path}: {type(exc).__name__}", 2) from exc
    hexdigits = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        secret = bytes.fromhex(hexdigits)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise fail(f"{path} must hold the order's 32-byte secret as 0x hex (64 hex digits)", 2)
    return secret


def bundle_from_chain(
    rpc_url: str,
    escrow: str,
    order_id: int,
    *,
    secret: bytes | None,
    wallet: LocalAccount | None,
    from_block: int,
) -> Built:
    """Build an order's bundle from a node alone (no backend): the chain's facts, the release
    the chain published (if it did), and the buyer's secret (given, or re-derived from the
    buyer's `wallet`).

    Raises:
        typer.Exit: bad input (address, secret not this order's key), the node cannot be
            reached, or the chain has no such order.
    """
    from eth_utils import is_address
    from nacl.public import PrivateKey

    from backend.evidence.bundle import Hints, build_bundle
    from backend.evidence.chainview import ChainView, hex32
    from backend.keys import recover_order_key

    if not is_address(escrow):
        raise fail(f"--escrow {escrow!r} is not an address", 2)
    try:
        view = ChainView(rpc_chain(rpc_url), escrow)
        if wallet is not None:
            secret = bytes(recover_order_key(view.client, wallet, order_id, from_block))
        built = build_bundle(
            view,
            order_id,
            buyer_secret=secret,
            hints=Hints(paid_block=from_block, listing_block=from_block),
        )
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    if secret is not None and hex32(bytes(PrivateKey(secret).public_key)) != (
        built.bundle.order.buyer_pub_key
    ):
        raise fail(
            f"this secret is not the key of order {order_id}: its public key is not the "
            "buyerPubKey the order was paid with; nothing was saved",
            2,
        )
    return built


def verify_file(path: Path, chain: Chain | str) -> Checklist:
    """Read a bundle file and verify it against the chain.

    Raises:
        typer.Exit: the file cannot be read, or the node cannot be reached.
    """
    from backend.evidence.verify import verify_bundle

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc}") from exc
    try:
        return verify_bundle(data, chain)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc


# ---------------------------------------------------------------- commands


@app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle file (JSON), as saved.")],
    rpc_url: Annotated[
        str,
        typer.Option(
            "--rpc-url",
            envvar="KAMENG_RPC_URL",
            help="A node of the bundle's chain (an archive node for old bundles).",
        ),
    ],
) -> None:
    """Check every claim of an evidence bundle against the chain alone (no backend, no database).

    Prints one line per claim, pass, fail or skip, and what the bundle establishes; exits 1 when
    any claim fails.
    """
    checklist = verify_file(bundle, rpc_url)
    print_checklist(checklist, title=f"{bundle}")
    if not checklist.ok:
        raise typer.Exit(1)


@app.command("evidence")
def evidence(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    out: Annotated[Path | None, typer.Option(help="Where to save the bundle (JSON).")] = None,
    with_buyer_secret: Annotated[
        bool,
        typer.Option(
            "--with-buyer-secret",
            help="As the buyer: add your per-order secret first (re-derived from your wallet). "
            "It lets the arbiter open this order's release, and reveals no other order.",
        ),
    ] = False,
    with_supplier_codes: Annotated[
        bool,
        typer.Option(
            "--with-supplier-codes",
            help="As the supplier: attach the salts and codes your vault sent for this order.",
        ),
    ] = False,
    additions: Annotated[
        bool, typer.Option(help="Include the parties' additions already given.")
    ] = True,
    check: Annotated[bool, typer.Option(help="Verify the bundle against the chain.")] = True,
    escrow: Annotated[
        str | None,
        typer.Option(
            "--escrow",
            help="Build the bundle from the chain alone, with no backend: the escrow's address "
            "(needs --rpc-url). The release is read from the chain when the order was "
            "delivered on-chain.",
        ),
    ] = None,
    order_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--order-secret-file",
            help="With --escrow: a file holding the buyer's per-order secret (0x hex), as the "
            "buyer handed it to the arbiter, to open the release.",
        ),
    ] = None,
    from_block: Annotated[
        int,
        typer.Option(
            "--from-block",
            min=0,
            help="With --escrow: scan the chain from this block (the escrow's deployment block).",
        ),
    ] = 0,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Pull an order's evidence bundle (its buyer, its supplier or an arbiter), save it and check
    it against the chain. Exits 1 when a claim fails.

    With --escrow and --rpc-url it needs no backend: anyone can build the bundle from a node
    (add --with-buyer-secret as the buyer, or --order-secret-file as the arbiter holding the
    buyer's secret, to open the release).
    """
    if escrow is not None:
        _evidence_from_chain(
            order_id,
            out=out,
            escrow=escrow,
            rpc_url=rpc_url,
            secret_file=order_secret_file,
            wallet=load_wallet(key_file, dev, keystore=keystore) if with_buyer_secret else None,
            with_supplier_codes=with_supplier_codes,
            from_block=from_block,
            check=check,
        )
        return
    if order_secret_file is not None:
        raise fail("--order-secret-file goes with --escrow (the backend keeps added secrets)", 2)
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        if with_buyer_secret:
            from backend.keys import recover_order_key

            paid_block = s.api.order(order_id, s.wallet).paid_block
            key = recover_order_key(s.escrow, s.wallet, order_id, paid_block)
            post_addition(s, order_id, "buyer-secret", {"order_secret": "0x" + bytes(key).hex()})
            console.print(f"  [green]✓[/green] added your secret for order {order_id}")
        if with_supplier_codes:
            n = post_addition(s, order_id, "supplier-codes", {"from_vault": True})
            console.print(f"  [green]✓[/green] attached the {n} code(s) your vault sent")
        bundle = fetch_bundle(s, order_id, with_additions=additions)
    except (ApiError, KamengError) as exc:
        raise fail(describe_error(exc)) from exc
    target = save(bundle, out)
    console.print(
        f"saved the evidence bundle of order {order_id} to {target} "
        f"({len(bundle.document.encode())} bytes)"
    )
    if bundle.additions_withheld:
        console.print(
            f"  [dim]the {' and '.join(bundle.additions_withheld)} addition(s) carry plaintext: "
            "only the arbiters of a disputed order see them, and each reading is recorded[/dim]"
        )
    if check:
        checklist = verify_file(target, s.escrow.chain)
        print_checklist(checklist, title=f"order {order_id}")
        if not checklist.ok:
            raise typer.Exit(1)


def _evidence_from_chain(
    order_id: int,
    *,
    out: Path | None,
    escrow: str,
    rpc_url: str | None,
    secret_file: Path | None,
    wallet: LocalAccount | None,
    with_supplier_codes: bool,
    from_block: int,
    check: bool,
) -> None:
    """`kameng evidence ORDER --escrow ADDRESS --rpc-url URL`: build, save and check a bundle
    with no backend.

    Raises:
        typer.Exit: bad input (one line, nothing saved), or a claim fails (exit 1).
    """
    if rpc_url is None:
        raise fail("--escrow builds the bundle from the chain alone: give --rpc-url too", 2)
    if with_supplier_codes:
        raise fail(
            "--with-supplier-codes reads your backend's vault: leave out --escrow to use it", 2
        )
    if secret_file is not None and wallet is not None:
        raise fail("give --with-buyer-secret or --order-secret-file, not both", 2)
    secret = read_order_secret(secret_file) if secret_file is not None else None
    built = bundle_from_chain(
        rpc_url, escrow, order_id, secret=secret, wallet=wallet, from_block=from_block
    )
    target = out or EVIDENCE_DIR / f"{order_id}.json"
    write_private(target, built.data)
    console.print(
        f"built the evidence bundle of order {order_id} from the chain alone and saved it to "
        f"{target} ({len(built.data)} bytes)"
    )
    release = built.bundle.release
    if release is not None and release.published is not None:
        console.print(
            f"  the release is the one published on-chain (ReleasePublished in "
            f"{release.published.tx})"
        )
    elif built.bundle.delivery is not None:
        console.print(
            "  [dim]the order was delivered off-chain: its sealed release is with the "
            "supplier's backend and the buyer, not in this bundle[/dim]"
        )
    if check:
        checklist = verify_file(target, rpc_url)
        print_checklist(checklist, title=f"order {order_id}")
        if not checklist.ok:
            raise typer.Exit(1)


@buyer_app.command("prove-bad-code")
def prove_bad_code_cmd(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    index: Annotated[
        int | None,
        typer.Option(help="The code index to prove (default: the first that does not match)."),
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Win without a judge: prove on-chain that a released code is not the committed one.

    Opens the release with your per-order key, finds a code that does not match its commitment
    and sends proveBadCode: you get the whole payment and the bond reservation. It reveals that
    one code and the order's release key. Works while the order is delivered (within the
    dispute window) or disputed.
    """
    from backend.errors import ReleaseInvalid
    from backend.evidence.arbiter import find_bad_code, prove_bad_code
    from backend.keys import recover_order_key
    from backend.release import bad_code_proof

    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        paid_block = s.api.order(order_id, s.wallet).paid_block
        release = s.api.release(order_id, s.wallet)
        key = recover_order_key(s.escrow, s.wallet, order_id, paid_block)
        proof = (
            bad_code_proof(release, key, index)
            if index is not None
            else find_bad_code(release, key)
        )
    except (ApiError, ReleaseInvalid, KamengError) as exc:
        raise fail(describe_error(exc)) from exc
    if proof is None:
        raise fail(
            f"every code of order {order_id} matches its commitment: there is nothing to prove "
            "on-chain (a code redeemed before the sale is for an arbiter: dispute the order)"
        )
    order = current_order(s, order_id)
    try:
        result = prove_bad_code(s.escrow, s.wallet, order_id, order, proof)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    print_outcome(result, f"proved index {proof.index} is not the committed code")
