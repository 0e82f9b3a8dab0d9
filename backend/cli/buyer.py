"""`kameng buyer buy / fetch / verify / confirm / dispute / refund / withdraw`.

A buyer pays into escrow with a per-order X25519 key derived from a signature of its wallet
(`backend.keys`), fetches the sealed release from the API, opens it and checks every code against
the commitment and Merkle root on-chain, and then confirms, disputes, or reclaims the payment
when nothing came by the deadline. Codes are shown masked unless ``--reveal`` is given.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from eth_utils import is_address, keccak, to_checksum_address
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
    current_order,
    describe_error,
    fail,
    load_wallet,
    write_private,
)
from backend.client import ApiError
from backend.errors import BackendError, JsonTooDeep, ReleaseInvalid
from backend.limits import loads
from contracts.coupons import Coupon, CouponError
from contracts.coupons import fault as coupon_fault
from contracts.encoding import ZERO_ADDRESS, OrderState
from contracts.errors import KamengError
from contracts.order_rules import coupon_prices, tier_price

if TYPE_CHECKING:
    from nacl.public import PrivateKey

    from backend.release import VerifiedRelease
    from backend.schemas import ReleasePublic
    from contracts.client import TxResult

buyer_app = typer.Typer(
    help="Buy codes into escrow, fetch and verify them, confirm or dispute.", no_args_is_help=True
)
app.add_typer(buyer_app, name="buyer")

RELEASES = Path("var/releases")


def _session(
    api: str, key_file: Path | None, dev: str | None, rpc: str | None, keystore: str | None
) -> Session:
    return connect(api, load_wallet(key_file, dev, keystore=keystore), rpc)


def _tx(what: str, res: TxResult) -> None:
    console.print(
        f"  [green]✓[/green] {what:<40} tx {res.tx_hash}  block {res.block_number}  "
        f"gas {res.gas_used:,}"
    )


def mask(code: str) -> str:
    """A code with all but its last four characters hidden."""
    return "•" * max(0, len(code) - 4) + code[-4:] if len(code) > 4 else "••••"


def verify_order(
    s: Session,
    order_id: int,
    release: ReleasePublic | None = None,
    *,
    key: PrivateKey | None = None,
    from_block: int | None = None,
    wait: float = 30.0,
) -> VerifiedRelease:
    """Fetch (unless given) and verify an order's release against the chain.

    The per-order key is re-derived from the wallet unless given; chain reads start at the
    order's payment block (from the API), since scanning a long chain from block 0 is slow.
    A release whose digest is not on-chain yet is checked again for up to `wait` seconds.

    Raises:
        ReleaseInvalid: the release fails a check (tampered, wrong key, code not committed).
        ApiError: the API refused to give it.
    """
    from backend.keys import recover_order_key
    from backend.release import verify_release_onchain

    if from_block is None:
        try:
            from_block = s.api.order(order_id, s.wallet).paid_block
        except ApiError:
            from_block = 0
    if release is None:
        release = s.api.release(order_id, s.wallet)
    if key is None:
        key = recover_order_key(s.escrow, s.wallet, order_id, from_block)
    deadline = time.monotonic() + wait
    while True:
        try:
            return verify_release_onchain(release, key, s.escrow, from_block)
        except ReleaseInvalid as exc:
            # The API serves a release only once its mirror shows the delivery, but the node
            # this CLI reads may be behind the backend's, and a release saved from an older
            # backend may predate its delivery.
            if exc.reason != "not-delivered" or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # polling the chain for the delivery, with a deadline


def show_codes(verified: VerifiedRelease, reveal: bool) -> None:
    """Print a table of verified codes, masked unless `reveal`."""
    table = Table(
        "index",
        "commitment",
        "check",
        "code" + ("" if reveal else " (masked)"),
        title=f"order {verified.order_id}: {len(verified.codes)} code(s)",
    )
    for c in verified.codes:
        text = c.text()
        table.add_row(
            str(c.index),
            "0x" + c.commitment.hex()[:16] + "…",
            "[green]matches the on-chain root[/green]",
            text if reveal else mask(text),
        )
    console.print(table)


@buyer_app.command("buy")
def buy(
    listing_id: Annotated[int, typer.Argument(help="The listing to buy from.")],
    quantity: Annotated[int, typer.Option("--quantity", "-q", min=1, help="How many codes.")] = 1,
    max_price: Annotated[
        int | None,
        typer.Option(
            help="Highest unit price accepted (wei); default: the listed price, or the shop's "
            "with --reseller."
        ),
    ] = None,
    reseller: Annotated[
        str | None,
        typer.Option(
            help="Buy in this reseller's shop (分站), at the shop's price instead of the "
            "listing's; the shop keeps its margin."
        ),
    ] = None,
    coupon: Annotated[
        str | None,
        typer.Option(
            help="A coupon (优惠券) of the listing's supplier, as the text it gave (or a link "
            "carrying ?coupon=...)."
        ),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the release and verify it.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the release.")] = 60.0,
    reveal: Annotated[bool, typer.Option(help="Print the codes in clear after verifying.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Pay for codes into escrow with a fresh per-order key, then (by default) fetch and verify."""
    from backend.keys import next_order_key, public_key_bytes

    shop = _reseller(reseller)
    presented = _coupon(coupon)
    s = _session(api, key_file, dev, rpc_url, keystore)
    try:
        listing = s.api.listing(listing_id)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    if listing.stock < quantity:
        raise fail(f"listing {listing_id} has {listing.stock} code(s) left; ask for fewer")
    cap = listing.max_quantity_per_order
    if cap is not None and quantity > cap:
        raise fail(
            f"listing {listing_id} delivers its codes on-chain, at most {cap} in one order; "
            "ask for fewer, or place several orders"
        )
    unit_price = listing.unit_price if shop == ZERO_ADDRESS else _shop_price(s, shop, listing_id)
    # Volume tiers, as the chain holds them now (the escrow charges them).
    discounted = tier_price(unit_price, s.escrow.storage.tiers(listing_id), quantity)
    if discounted != unit_price:
        console.print(
            f"  volume tier: {quantity} codes at {discounted} a code instead of {unit_price}"
        )
    unit_price = discounted
    if presented is not None:
        unit_price = _coupon_price(s, presented, listing_id, shop, unit_price, quantity)
    price = max_price if max_price is not None else unit_price
    amount = unit_price * quantity
    try:
        if listing.token != ZERO_ADDRESS:
            _approve(s, listing.token, amount)
        key, nonce = next_order_key(s.escrow, s.wallet)
        s.escrow.tx.reset_nonce(s.wallet.address)
        oid, order, res = s.escrow.buy(
            s.wallet,
            listing_id,
            quantity,
            max_unit_price=price,
            buyer_pubkey=public_key_bytes(key),
            reseller=shop,
            value=amount if listing.token == ZERO_ADDRESS else 0,
            coupon=presented,
        )
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(
        f"order [bold]{oid}[/bold]: {quantity} code(s) of listing {listing_id} for "
        f"{amount} wei, key from nonce {nonce}"
    )
    if shop != ZERO_ADDRESS:
        console.print(f"  bought in the shop of {shop} (its margin: {order.reseller_cut} wei)")
    _tx("paid into escrow", res)
    console.print(f"  delivery deadline: {order.deadline} (chain time)")
    if listing.on_chain_release:
        console.print(
            "  the codes travel on-chain: `kameng recover` gets them back from any node, with "
            "or without this platform"
        )
    if not wait:
        return
    try:
        release = s.api.wait_release(oid, s.wallet, timeout=timeout)
        verified = verify_order(s, oid, release, key=key, from_block=res.block_number)
    except (ApiError, BackendError) as exc:
        raise fail(f"{exc}; fetch later with `kameng buyer fetch {oid}`") from exc
    console.print(f"  [green]✓[/green] release {release.digest.hex()[:16]}… fetched and verified")
    show_codes(verified, reveal)


def _coupon(value: str | None) -> Coupon | None:
    """The `--coupon` option read (its text, or a link carrying ``coupon=``).

    Raises:
        typer.Exit: it is not a coupon (exit 2, before anything is sent).
    """
    if value is None:
        return None
    text = value.split("coupon=", 1)[1].split("&", 1)[0] if "coupon=" in value else value
    try:
        return Coupon.from_text(text)
    except CouponError as exc:
        raise fail(f"--coupon: {exc}", 2) from exc


def _coupon_price(
    s: Session, coupon: Coupon, listing_id: int, shop: str, unit_price: int, quantity: int
) -> int:
    """The unit price after `coupon`, checked as the escrow checks it (signer, expiry, listing,
    buyer, uses), from the chain as it is now.

    Raises:
        typer.Exit: the escrow would refuse the coupon (nothing is sent).
    """
    listing = s.escrow.listing(listing_id)
    supplier = str(listing["supplier"])
    if coupon.signer(s.escrow.chain.chain_id, s.escrow.address) != supplier:
        raise fail(
            "the coupon is not signed by this listing's supplier for this escrow "
            "(EscrowBadSignature); nothing sent"
        )
    fault = coupon_fault(
        coupon,
        listing_id=listing_id,
        listing_sku=bytes(listing["sku"]),
        buyer=s.wallet.address,
        now=s.escrow.chain.timestamp(),
        used=s.escrow.storage.coupon_uses(supplier, coupon.id),
    )
    if fault is not None:
        raise fail(f"{fault}; nothing sent")
    resale = None
    if shop != ZERO_ADDRESS:
        floor = int(s.escrow.call("resellerPrice", listing_id))
        resale = tier_price(floor, s.escrow.storage.tiers(listing_id), quantity)
    try:
        unit, _ = coupon_prices(unit_price, resale, coupon.discount_bps, coupon.amount_off)
    except ValueError as exc:
        raise fail(f"{exc} (EscrowCouponTooLarge); nothing sent") from exc
    console.print(
        f"  coupon {coupon.id}: {quantity} code(s) at {unit} a code instead of {unit_price}"
    )
    return unit


def _reseller(value: str | None) -> str:
    """The `--reseller` option as a checksummed address (the zero address when not given).

    Raises:
        typer.Exit: it is not an address (exit 2, before anything is sent).
    """
    if value is None:
        return ZERO_ADDRESS
    if not is_address(value):
        raise fail(f"--reseller {value!r} is not an address (0x and 40 hex digits)", 2)
    return str(to_checksum_address(value))


def _shop_price(s: Session, reseller: str, listing_id: int) -> int:
    """The unit price of a listing in a reseller's shop, read from the chain (the escrow
    charges it), checked against the listing's reseller price as `buy` checks it.

    Raises:
        typer.Exit: the shop does not sell the listing now.
    """
    price = int(s.escrow.call("shopPrice", reseller, listing_id))
    if price == 0:
        raise fail(f"listing {listing_id} is not in the shop of {reseller}")
    floor = int(s.escrow.call("resellerPrice", listing_id))
    if floor == 0 or price < floor:
        why = (
            "closed it to resellers" if floor == 0 else "raised its reseller price above the shop's"
        )
        raise fail(
            f"the shop of {reseller} cannot sell listing {listing_id} now: its supplier {why}"
        )
    return price


def _approve(s: Session, token: str, amount: int) -> None:
    from contracts.artifacts import load

    erc20 = s.escrow.w3.eth.contract(address=to_checksum_address(token), abi=load("TestToken").abi)
    receipt = s.escrow.tx.send(s.wallet, erc20.functions.approve(s.escrow.address, amount))
    assert isinstance(receipt, dict)
    console.print(f"  [green]✓[/green] approved {amount} of token {token}")


@buyer_app.command("fetch")
def fetch(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    out: Annotated[Path | None, typer.Option(help="Where to save the release (JSON).")] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Fetch an order's sealed release and save it as JSON (anyone may fetch it: it opens only
    with its buyer's per-order key)."""
    s = _session(api, key_file, dev, rpc_url, keystore)
    try:
        release = s.api.release(order_id, s.wallet)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    target = out or RELEASES / f"{order_id}.json"
    write_private(target, release.model_dump_json(indent=2).encode())
    console.print(
        f"saved the sealed release of order {order_id} to {target} "
        f"({len(release.sealed)} bytes sealed, digest 0x{release.digest.hex()}, "
        f"{release.state})"
    )


@buyer_app.command("verify")
def verify(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify a saved release instead.")
    ] = None,
    reveal: Annotated[bool, typer.Option(help="Print the codes in clear.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Open the release with your key and check every code against the chain.

    Checks: the digest posted on-chain, the sealed box opening with your per-order key, and each
    code against its commitment and the batch's Merkle root. Exits 1 on any failure.
    """
    from backend.schemas import ReleasePublic

    s = _session(api, key_file, dev, rpc_url, keystore)
    release = None
    if file is not None:
        try:
            data = loads(file.read_text(), str(file))
            data.setdefault("order_state", "unknown")
            release = ReleasePublic.model_validate(data)
        except (OSError, ValueError, JsonTooDeep) as exc:
            raise fail(f"cannot read {file}: {exc}") from exc
        if release.order_id != order_id:
            raise fail(f"{file} holds the release of order {release.order_id}, not {order_id}")
    try:
        verified = verify_order(s, order_id, release)
    except ReleaseInvalid as exc:
        raise fail(
            f"the release of order {order_id} FAILED verification: {exc}. Do not "
            f"confirm; open a dispute with `kameng buyer dispute {order_id}`"
        ) from exc
    except (ApiError, BackendError) as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"[green]✓[/green] order {order_id}: the digest matches the chain, the box opened "
        "with your key, and every code matches its commitment under the batch root"
    )
    show_codes(verified, reveal)


@buyer_app.command("confirm")
def confirm(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    skip_verify: Annotated[bool, typer.Option(help="Confirm without verifying first.")] = False,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Confirm receipt: the supplier is paid and its bond freed. Verifies the release first."""
    s = _session(api, key_file, dev, rpc_url, keystore)
    if not skip_verify:
        try:
            verify_order(s, order_id)
        except ReleaseInvalid as exc:
            raise fail(f"not confirming: {exc}; dispute instead") from exc
        except (ApiError, BackendError) as exc:
            raise fail(f"not confirming, the release could not be checked: {exc}") from exc
    order = current_order(s, order_id)
    if order.state != OrderState.DELIVERED:
        raise fail(
            f"order {order_id} is {order.state.name.lower()}; only a delivered order "
            "can be confirmed"
        )
    try:
        res = s.escrow.confirm(s.wallet, order_id, order)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    _tx(f"confirmed order {order_id}", res)


@buyer_app.command("dispute")
def dispute(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    reason: Annotated[
        str, typer.Option(help="What is wrong, in a sentence (its hash goes on-chain).")
    ],
    evidence_uri: Annotated[str, typer.Option(help="Where your evidence lives (optional).")] = "",
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Open a dispute on a delivered order, within its dispute window."""
    s = _session(api, key_file, dev, rpc_url, keystore)
    order = current_order(s, order_id)
    uri = evidence_uri or f"kameng:statement/{order_id}"
    try:
        order, res = s.escrow.dispute(s.wallet, order_id, order, uri, keccak(text=reason))
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    _tx(f"disputed order {order_id}", res)
    console.print(
        f"  an arbiter rules by {order.deadline} (chain time); after that anyone may "
        "apply the equal-split fallback"
    )


@buyer_app.command("refund")
def refund(
    order_id: Annotated[int, typer.Argument(help="The order id.")],
    withdraw: Annotated[bool, typer.Option(help="Also withdraw your balance afterwards.")] = True,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Reclaim the whole payment of an order not delivered by its deadline."""
    s = _session(api, key_file, dev, rpc_url, keystore)
    order = current_order(s, order_id)
    if order.state != OrderState.PAID:
        raise fail(
            f"order {order_id} is {order.state.name.lower()}: only an undelivered order "
            "can be refunded"
        )
    now = s.escrow.chain.timestamp()
    # The next block is at least one second after the latest, and refund needs it past the
    # deadline: so it can go as soon as the latest block has reached the deadline.
    if now < order.deadline:
        raise fail(
            f"the delivery deadline {order.deadline} has not passed (chain time {now}, "
            f"{order.deadline - now} s to go); retry after it"
        )
    try:
        res = s.escrow.refund(s.wallet, order_id, order)
        _tx(f"refunded order {order_id}", res)
        if withdraw:
            _tx("withdrew the balance", s.escrow.withdraw(s.wallet, order.token))
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc


@buyer_app.command("withdraw")
def withdraw(
    token: Annotated[
        str, typer.Option(help="Token to withdraw (zero = native coin).")
    ] = ZERO_ADDRESS,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Withdraw your whole balance (refunds, rulings, commissions) of a token."""
    s = _session(api, key_file, dev, rpc_url, keystore)
    try:
        _tx("withdrew the balance", s.escrow.withdraw(s.wallet, to_checksum_address(token)))
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc


@buyer_app.command("orders")
def orders(
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """List your orders."""
    from backend.client import KamengClient

    wallet = load_wallet(key_file, dev, keystore=keystore)
    client = KamengClient(api)
    try:
        rows = client.my_orders(account=wallet)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    table = Table("order", "listing", "qty", "amount (wei)", "state", "deadline", "release")
    for r in rows:
        table.add_row(
            str(r.order_id),
            str(r.listing_id),
            str(r.quantity),
            str(r.amount),
            r.state_name,
            str(r.deadline),
            "ready" if r.release_ready else "—",
        )
    console.print(table)
