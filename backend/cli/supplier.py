"""`kameng supplier upload / dashboard / listing / on-chain / tiers / bond / delivery-key`.

Uploads go through the API (signed in with SIWE) to the vault of the backend that holds the
supplier's key; the rest are the supplier's own transactions, signed locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eth_utils import to_checksum_address
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.common import (
    DEFAULT_API,
    ApiOption,
    DevOption,
    KeyFileOption,
    KeystoreOption,
    RpcOption,
    Session,
    connect,
    describe_error,
    fail,
    load_wallet,
)
from backend.client import ApiError, KamengClient
from contracts.encoding import ZERO_ADDRESS, sku_id
from contracts.errors import KamengError
from contracts.order_rules import MAX_ON_CHAIN_QUANTITY, tier_fault, tier_price

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from backend.schemas import UploadPublic

supplier_app = typer.Typer(
    help="Upload codes, watch orders and settlements, manage bond and listings.",
    no_args_is_help=True,
)
app.add_typer(supplier_app, name="supplier")
bond_app = typer.Typer(help="Deposit or withdraw bond.", no_args_is_help=True)
supplier_app.add_typer(bond_app, name="bond")


def _wei(amount: int) -> str:
    return f"{amount / 10**18:,.6f}".rstrip("0").rstrip(".") + f" ({amount} wei)"


def _units(amount: int, symbol: str, decimals: int) -> str:
    """An amount in a token's smallest units as its holders read it: ``1.99 USDT``."""
    whole, frac = divmod(amount, 10**decimals)
    text = f"{whole:,}" + (f".{frac:0{decimals}d}".rstrip("0") if frac else "")
    return f"{text} {symbol}"


TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        help="An allowed ERC-20 (a USDT-like stablecoin) instead of the native coin; amounts "
        "are then in its smallest units (1.99 USDT with 6 decimals is 1990000).",
    ),
]


@supplier_app.command("upload")
def upload(
    listing_id: Annotated[int, typer.Argument(help="The listing the codes are for.")],
    csv_file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: one code per row, optional expiry and note.",
        ),
    ],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Upload a CSV of codes: validated and encrypted at rest by the backend, then committed
    on-chain as one batch by your own wallet (the backend never holds your key). The codes go
    on sale once the batch is mined."""
    wallet = load_wallet(key_file, dev, keystore=keystore)
    data = csv_file.read_bytes()
    client = KamengClient(api, timeout=600)
    try:
        client.sign_in(wallet)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            sending = bar.add_task("sending  ", total=len(data))
            vault = bar.add_task("vault    ", total=None)

            def sent(done: int, total: int) -> None:
                bar.update(sending, completed=done, total=total)

            def processed(done: int, total: int) -> None:
                bar.update(vault, completed=done, total=total)

            result = client.upload_codes(listing_id, data, progress=processed, sent=sent)
            bar.update(vault, completed=result.count, total=result.count)
    except ApiError as exc:
        for line, reason in exc.errors[:50]:
            console.print(f"  line {line}: {reason}" if line else f"  {reason}")
        if len(exc.errors) > 50:
            console.print(f"  … and {len(exc.errors) - 50} more")
        raise fail(exc.detail if exc.errors else str(exc)) from exc
    if result.state == "awaiting":
        result = _commit_own_batch(client, wallet, api, rpc_url, result)
    console.print(
        f"[green]✓[/green] {result.count} codes stored and committed to listing "
        f"{listing_id}: indexes {result.first_index}..{result.first_index + result.count - 1},"
        f" batch {result.batch_index}, root {result.root}"
    )
    console.print(f"  commitBatch tx {result.tx_hash} ({result.state})")


def _commit_own_batch(
    client: KamengClient,
    wallet: LocalAccount,
    api: str,
    rpc_url: str | None,
    result: UploadPublic,
) -> UploadPublic:
    """Sign and send the commitBatch the vault asked for, from the supplier's own wallet, then
    report it; the codes are on sale once it is mined.

    Raises:
        typer.Exit: the call is not the one the upload describes, the chain refuses it, or it
            does not mine (the upload then waits; run the command's upload again later).
    """
    from backend.chaintx import encode_call

    call = result.commit_call
    root = bytes.fromhex(result.root[2:])
    expected = encode_call(
        "commitBatch", [result.listing_id, root, result.count, result.first_index]
    )
    s = connect(api, wallet, rpc_url)
    if (
        call is None
        or bytes.fromhex(call.data[2:]) != expected
        or call.to.lower() != s.escrow.address.lower()
    ):
        raise fail("the backend asked to sign a call other than this upload's commitBatch")
    console.print(
        f"  signing commitBatch with {wallet.address} (your key stays here)", soft_wrap=True
    )
    try:
        res = s.escrow.commit_batch(
            wallet, result.listing_id, root, result.count, result.first_index
        )
    except KamengError as exc:
        raise fail(
            f"commitBatch failed ({describe_error(exc)}); the upload {result.upload_id} waits: "
            "nothing of it is on sale"
        ) from exc
    try:
        return client.submit_upload(result.upload_id, res.tx_hash)
    except ApiError as exc:
        raise fail(
            f"the batch is on-chain (tx {res.tx_hash}) but reporting it failed: {exc}; "
            "the backend finds it on-chain by itself"
        ) from exc


@supplier_app.command("dashboard")
def dashboard(
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Orders, settlements, bond, escrow and stock, from the mirror."""
    wallet = load_wallet(key_file, dev, keystore=keystore)
    client = KamengClient(api)
    try:
        client.sign_in(wallet)
        d = client.dashboard()
    except ApiError as exc:
        raise fail(str(exc)) from exc
    console.rule(f"supplier {d.supplier}")
    for b in d.bonds:
        console.print(f"bond ({b.token}): free {_wei(b.free)}, reserved {_wei(b.reserved)}")
    for t in d.in_escrow:
        console.print(f"held in escrow for open orders: {_wei(t.amount)}")
    for t in d.balances:
        console.print(f"withdrawable balance: {_wei(t.amount)}")
    for t in d.earned:
        console.print(f"earned in all: {_wei(t.amount)}")
    console.print(
        "orders: " + (", ".join(f"{k} {v}" for k, v in d.orders_by_state.items()) or "none")
    )
    for m in d.settlement:
        console.print(
            f"settled {_wei(m.settled)} ({m.settled_orders} orders); due now {_wei(m.due)} "
            f"({m.due_orders}: `kameng supplier settle` or the keeper pays them); in the "
            f"dispute window {_wei(m.in_window)} ({m.in_window_orders})",
            soft_wrap=True,
        )
    table = Table(
        "listing",
        "price (wei)",
        "committed",
        "sold",
        "stock",
        "vault",
        "delivery",
        "alert",
        title="stock",
    )
    for row in d.listings:
        table.add_row(
            str(row.listing_id),
            str(row.unit_price),
            str(row.committed),
            str(row.sold),
            str(row.stock),
            str(row.vault_codes),
            f"on-chain from #{row.on_chain_from - 1}" if row.on_chain_release else "off-chain",
            "[yellow]low stock[/yellow]" if row.low_stock else "",
        )
    console.print(table)
    if d.recent_settlements:
        st = Table("order", "kind", "amount (wei)", "block", "tx", title="recent settlements")
        for p in d.recent_settlements[:20]:
            st.add_row(str(p.order_id), p.kind, str(p.amount), str(p.block_number), p.tx_hash)
        console.print(st)


@supplier_app.command("listing")
def create_listing(
    sku: Annotated[str, typer.Option(help="Product name (hashed to the sku) or 0x bytes32.")],
    price: Annotated[
        int, typer.Option(help="Unit price in the smallest units (wei, or the token's).")
    ],
    delivery_window: Annotated[int, typer.Option(help="Seconds to deliver after payment.")] = 3600,
    dispute_window: Annotated[int, typer.Option(help="Seconds the buyer may dispute.")] = 86_400,
    bond_bps: Annotated[
        int, typer.Option(help="Bond reserved per order, in bps of its amount.")
    ] = 1000,
    metadata_uri: Annotated[str, typer.Option(help="Where the listing's description lives.")] = "",
    token: TokenOption = ZERO_ADDRESS,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Open a listing for an authorized sku, priced in the native coin or an allowed ERC-20."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    sku_bytes = bytes.fromhex(sku[2:]) if sku.startswith("0x") and len(sku) == 66 else sku_id(sku)
    try:
        listing_id, res = s.escrow.create_listing(
            s.wallet,
            sku=sku_bytes,
            unit_price=price,
            token=to_checksum_address(token),
            delivery_window=delivery_window,
            dispute_window=dispute_window,
            bond_bps=bond_bps,
            metadata_uri=metadata_uri,
        )
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    symbol, decimals = s.escrow.token_info(token)
    console.print(f"  unit price {_units(price, symbol, decimals)}", soft_wrap=True)
    console.print(
        f"[green]✓[/green] listing {listing_id} opened: tx {res.tx_hash}, gas {res.gas_used:,}"
    )


@supplier_app.command("on-chain")
def on_chain(
    listing_id: Annotated[int, typer.Argument(help="The listing to deliver on-chain.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Deliver every later order of a listing on-chain (`requireOnChainRelease`): each sealed
    release is published in its delivery transaction, so buyers can read their codes from the
    chain even if this platform is gone. One way, and orders are then capped at 32 codes."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    listing = _own_listing(s, listing_id)
    start = int(listing["on_chain_from"])
    if start:
        console.print(
            f"listing {listing_id} already delivers on-chain: every order from code index "
            f"{start - 1} on; nothing sent"
        )
        return
    sold = int(listing["sold"])
    if not yes and not typer.confirm(
        f"Listing {listing_id}: every order from its next one on (code index {sold}) will be "
        "delivered on-chain, its sealed release published in the delivery transaction (more "
        "gas per delivery). This is one way: it can never be undone, and from now on an order "
        f"holds at most {MAX_ON_CHAIN_QUANTITY} codes. Go ahead?",
        default=False,
    ):
        console.print(f"nothing sent: listing {listing_id} still delivers off-chain")
        raise typer.Exit(1)
    try:
        res = s.escrow.require_on_chain_release(s.wallet, listing_id)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    try:
        start = int(res.event("OnChainReleaseRequired").args["onChainFrom"])
    except KeyError:  # set by another transaction of this wallet first: no event, same promise
        start = int(s.escrow.listing(listing_id)["on_chain_from"])
    console.print(
        f"[green]✓[/green] listing {listing_id} delivers on-chain from code index {start - 1} "
        f"on, at most {MAX_ON_CHAIN_QUANTITY} codes an order: tx {res.tx_hash}, gas "
        f"{res.gas_used:,}",
        soft_wrap=True,
    )


@bond_app.command("deposit")
def bond_deposit(
    amount: Annotated[
        int, typer.Argument(help="Amount in the smallest units (wei, or the token's).")
    ],
    token: TokenOption = ZERO_ADDRESS,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Deposit bond in the native coin, or in an allowed ERC-20 (approved first, for exactly
    this amount); it backs listings priced in that token."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    asset = to_checksum_address(token)
    try:
        if int(asset, 16) != 0:
            _refused_before_approval(s, asset, amount)
            s.escrow.approve_token(s.wallet, asset, amount)
        res = s.escrow.deposit_bond(s.wallet, amount, asset)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    symbol, decimals = s.escrow.token_info(asset)
    free, reserved = s.escrow.bond_of(s.wallet.address, asset)
    console.print(
        f"[green]✓[/green] deposited {_units(amount, symbol, decimals)}: tx {res.tx_hash}, gas "
        f"{res.gas_used:,}; bond free {_units(free, symbol, decimals)}, reserved "
        f"{_units(reserved, symbol, decimals)}",
        soft_wrap=True,
    )


def _refused_before_approval(s: Session, token: str, amount: int) -> None:
    """Check the deposit before approving anything: a token the escrow does not accept is
    refused from its storage, then a dry run of the deposit names any other refusal of the
    escrow's own (a bond over the cap); the token's refusal for want of an allowance is what the
    approval then fixes.

    Raises:
        typer.Exit: the escrow does not accept the token.
        ContractRevertError: the escrow refuses the deposit whatever the allowance.
    """
    from contracts.client import REVERTS, decode_revert
    from contracts.errors import ContractRevertError

    if not s.escrow.storage.token_allowed(token):
        raise fail(
            f"the escrow does not accept {token} (EscrowTokenNotAllowed): the operator allows "
            "tokens; nothing was approved or sent"
        )
    try:
        s.escrow.contract.functions.depositBond(token, amount).call({"from": s.wallet.address})
    except REVERTS as exc:
        decoded = decode_revert(exc)
        if (
            isinstance(decoded, ContractRevertError)
            and decoded.name != "ERC20InsufficientAllowance"
        ):
            raise decoded from exc


@bond_app.command("withdraw")
def bond_withdraw(
    amount: Annotated[int, typer.Argument(help="Amount in wei.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Withdraw free bond (reserved bond backs open orders and stays)."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        res = s.escrow.withdraw_bond(s.wallet, amount)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(f"[green]✓[/green] withdrew {_wei(amount)} of bond: tx {res.tx_hash}")


@supplier_app.command("delivery-key")
def delivery_key(
    address: Annotated[str, typer.Argument(help="The delivery account's address.")],
    disable: Annotated[bool, typer.Option(help="Remove it instead.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Propose (or remove) the key the delivery agent signs deliveries with.

    A proposed key acts only after it accepts (acceptDeliveryKey, signed by the key itself; the
    platform's delivery agent accepts on its own when it next sees one of your orders). Removal is
    immediate.
    """
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        res = s.escrow.set_delivery_key(s.wallet, to_checksum_address(address), not disable)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    if disable:
        console.print(f"[green]✓[/green] delivery key {address} removed: tx {res.tx_hash}")
    else:
        console.print(
            f"[green]✓[/green] delivery key {address} proposed: tx {res.tx_hash}; it delivers "
            "once the key accepts (the platform's delivery agent does so by itself)"
        )


def _own_listing(s: Session, listing_id: int) -> dict[str, Any]:
    """The wallet's listing `listing_id`, as the chain holds it now.

    Raises:
        typer.Exit: no such listing, or another supplier's (exit 2, nothing sent).
    """
    listing = s.escrow.listing(listing_id)
    supplier = str(listing["supplier"])
    if int(supplier, 16) == 0:
        raise fail(
            f"unknown listing {listing_id}: escrow {s.escrow.address} has no such listing", 2
        )
    if supplier.lower() != s.wallet.address.lower():
        raise fail(f"listing {listing_id} belongs to {supplier}, not to you", 2)
    return listing


def _tier(text: str) -> tuple[int, int]:
    """One ``QUANTITY:PERCENT`` tier (``10:5`` is 5% off from 10 codes; ``100:7.5`` works) as
    ``(min_quantity, discount_bps)``.

    Raises:
        typer.Exit: it is not of that form (exit 2, before anything is sent).
    """
    quantity, sep, percent = text.partition(":")
    try:
        minimum, off = int(quantity), float(percent.rstrip("%"))
    except ValueError:
        minimum, off = 0, -1.0
    bps = round(off * 100)
    if not sep or minimum < 0 or off < 0 or abs(bps - off * 100) > 1e-6:
        raise fail(
            f"tier {text!r} is not QUANTITY:PERCENT (for example 10:5 for 5% off from 10 codes; "
            "percent to two decimals); nothing sent",
            2,
        )
    return minimum, bps


@supplier_app.command("tiers")
def tiers(
    listing_id: Annotated[int, typer.Argument(help="The listing (yours).")],
    tier: Annotated[
        list[str] | None,
        typer.Argument(
            help="Up to 3 tiers as QUANTITY:PERCENT, for example 10:5 100:10 (5% off from 10 "
            "codes, 10% off from 100). None removes the tiers."
        ),
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Set a listing's volume tiers (批发价): from each quantity an order pays that percent less a
    code, off the listing's price and, in a reseller's shop, off the shop's price and your
    reseller price alike. Open orders keep the price they paid."""
    wanted = [_tier(t) for t in tier or []]
    fault = tier_fault(wanted)
    if fault is not None:
        raise fail(f"{fault}; nothing sent", 2)
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    listing = _own_listing(s, listing_id)
    try:
        res = s.escrow.set_tiers(s.wallet, listing_id, wanted)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    if not wanted:
        console.print(
            f"[green]✓[/green] listing {listing_id} has no volume tiers now: tx {res.tx_hash}"
        )
        return
    price = int(listing["unit_price"])
    table = Table("from", "discount", "unit price (base units)", title=f"listing {listing_id}")
    table.add_row("1", "—", str(price))
    for minimum, bps in wanted:
        table.add_row(str(minimum), f"{bps / 100:g}%", str(tier_price(price, wanted, minimum)))
    console.print(table)
    console.print(f"[green]✓[/green] volume tiers set: tx {res.tx_hash}, gas {res.gas_used:,}")


@supplier_app.command("close")
def close_listing(
    listing_id: Annotated[int, typer.Argument(help="The listing to take off sale.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Take a listing off sale; orders already paid still finish (delivered, or refunded)."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    _close(s, listing_id)


def _close(s: Session, listing_id: int) -> bool:
    """Close one listing of the wallet; False if it was closed already.

    Raises:
        typer.Exit: it is not the wallet's, or the chain refused.
    """
    listing = _own_listing(s, listing_id)
    if not listing["active"]:
        return False
    try:
        res = s.escrow.update_listing(s.wallet, listing_id, int(listing["unit_price"]), False)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(f"[green]✓[/green] listing {listing_id} closed: tx {res.tx_hash}")
    return True


@supplier_app.command("withdraw")
def withdraw_earnings(
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Withdraw your earnings (settled orders) to your wallet."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    _withdraw(s)


def _withdraw(s: Session) -> int:
    owed = s.escrow.balance_of(s.wallet.address)
    if owed == 0:
        console.print("no earnings to withdraw")
        return 0
    try:
        res = s.escrow.withdraw(s.wallet)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(f"[green]✓[/green] withdrew {_wei(owed)} of earnings: tx {res.tx_hash}")
    return owed


@supplier_app.command("leave")
def leave(
    revoke_delivery_key: Annotated[
        str | None,
        typer.Option(
            help="Also remove this delivery key (the platform's): orders paid but not yet "
            "delivered are then refunded to their buyers at their deadline."
        ),
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Leave the platform: close every listing, withdraw earnings and free bond, and say what
    still waits on orders in flight (they finish or refund; run `leave` again afterwards)."""
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    me = s.wallet.address.lower()
    count = int(s.escrow.call("listingCount"))
    closed = sum(
        _close(s, lid)
        for lid in range(1, count + 1)
        if str(s.escrow.listing(lid)["supplier"]).lower() == me
    )
    console.print(f"{closed} listing(s) closed; nothing of yours is on sale now")
    if revoke_delivery_key is not None:
        try:
            res = s.escrow.set_delivery_key(
                s.wallet, to_checksum_address(revoke_delivery_key), False
            )
        except KamengError as exc:
            raise fail(describe_error(exc)) from exc
        console.print(f"[green]✓[/green] delivery key {revoke_delivery_key} removed: {res.tx_hash}")
    _withdraw(s)
    free, reserved = s.escrow.bond_of(s.wallet.address)
    if free:
        try:
            s.escrow.withdraw_bond(s.wallet, free)
        except KamengError as exc:
            raise fail(describe_error(exc)) from exc
        console.print(f"[green]✓[/green] withdrew {_wei(free)} of free bond")
    if reserved:
        console.print(
            f"{_wei(reserved)} of bond still backs orders in flight: they finish (delivered and "
            "settled, or refunded); run `kameng supplier leave` again then to withdraw the rest",
            soft_wrap=True,
        )
    else:
        console.print("nothing left in the escrow: you have left")


__all__ = ["supplier_app"]


@supplier_app.command("settle")
def settle(
    batch: Annotated[int, typer.Option(help="Orders per settle transaction.", min=1, max=500)] = 50,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Settle your delivered orders whose dispute window has closed, now (the keeper does it on
    its own too): you are paid without waiting for the buyers."""
    from contracts.encoding import Order

    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    try:
        s.api.sign_in(s.wallet)
        now = s.escrow.chain.timestamp()
        # Due by the mirror, still due on-chain (the stored hash matches: nobody settled it
        # since), and past the window by the chain's own clock.
        due = [
            (int(r.order_id), order)
            for r in s.api.due_orders()
            if int(r.deadline) < now
            and s.escrow.order_matches(int(r.order_id), order := Order.from_record(r))
        ]
        if not due:
            console.print("nothing to settle: no delivered order of yours is past its window")
            return
        total = 0
        for start in range(0, len(due), batch):
            chunk = due[start : start + batch]
            s.escrow.tx.reset_nonce(s.wallet.address)
            res = s.escrow.settle(s.wallet, chunk)
            total += len(chunk)
            console.print(
                f"[green]✓[/green] settled {len(chunk)} order(s): tx {res.tx_hash}, gas "
                f"{res.gas_used:,} ({res.gas_used // len(chunk):,} per order)"
            )
    except (ApiError, KamengError) as exc:
        raise fail(describe_error(exc)) from exc
    console.print(f"{total} order(s) settled; withdraw with your wallet when you like")
