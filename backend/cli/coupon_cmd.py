"""`kameng supplier coupon` and `kameng supplier revoke-coupon`: coupons a supplier signs with its
own key (EIP-712, nothing sent) and shares as text or a link; a buyer presents them with
`kameng buyer buy --coupon` or in the web (docs/PROTOCOL.md, "Coupons")."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from eth_utils import is_address, to_checksum_address

from backend.cli.app import console
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
)
from backend.cli.supplier import _own_listing, _units, supplier_app
from contracts import coupons
from contracts.coupons import Coupon, CouponError
from contracts.encoding import ZERO_ADDRESS
from contracts.errors import KamengError
from contracts.order_rules import BPS, coupon_prices


def _percent(text: str) -> int:
    """``7.5`` (percent) as basis points.

    Raises:
        typer.Exit: not a percentage with at most two decimals, from 0 to below 100.
    """
    try:
        bps = Decimal(text) * 100
    except InvalidOperation as exc:
        raise fail(f"--off {text!r}: give a percentage such as 10 or 7.5", 2) from exc
    if bps != bps.to_integral_value() or not 0 <= bps < BPS:
        raise fail(f"--off {text}: a percentage from 0 to below 100, at most two decimals", 2)
    return int(bps)


def _amount(text: str, decimals: int, symbol: str) -> int:
    """``0.5`` (in the listing's token) as smallest units.

    Raises:
        typer.Exit: not an amount the token can hold.
    """
    try:
        units = Decimal(text) * 10**decimals
    except InvalidOperation as exc:
        raise fail(f"--amount-off {text!r}: give an amount such as 0.5 ({symbol})", 2) from exc
    if units != units.to_integral_value() or units < 0:
        raise fail(f"--amount-off {text}: {symbol} has {decimals} decimals", 2)
    return int(units)


@supplier_app.command("coupon")
def coupon(
    listing_id: Annotated[int, typer.Argument(help="The listing (yours) the coupon is for.")],
    off: Annotated[str, typer.Option("--off", help="Percent off the unit price, e.g. 10.")] = "0",
    amount_off: Annotated[
        str,
        typer.Option("--amount-off", help="Off each code, in the listing's token (e.g. 0.5)."),
    ] = "0",
    uses: Annotated[int, typer.Option(help="Purchases that may use it; 0 for no limit.")] = 1,
    days: Annotated[float, typer.Option(help="Days until it expires.")] = 7.0,
    buyer: Annotated[
        str | None, typer.Option(help="The one buyer (address) who may use it.")
    ] = None,
    whole_product: Annotated[
        bool,
        typer.Option(
            "--whole-product", help="Good for every listing of yours of this listing's product."
        ),
    ] = False,
    coupon_id: Annotated[
        int | None,
        typer.Option(
            "--id",
            help="Its number (default: random). Coupons of one number share one use count; "
            "numbering them 1, 2, 3… puts eight counts in one storage word, which makes each "
            "use after the first in a word about 17,000 gas cheaper for the buyer.",
        ),
    ] = None,
    reseller: Annotated[
        str | None, typer.Option(help="Put the link in this reseller's shop (its address).")
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """Sign a coupon (优惠券) for one of your listings and print it with a share link. Nothing is
    sent: the signature is the coupon, and the escrow counts its uses when a buyer presents it.
    The percentage comes off after any volume tier; the amount off comes out of your part (a
    reseller's margin stays)."""
    if buyer is not None and not is_address(buyer):
        raise fail(f"--buyer {buyer!r} is not an address", 2)
    if reseller is not None and not is_address(reseller):
        raise fail(f"--reseller {reseller!r} is not an address", 2)
    if days <= 0:
        raise fail("--days must be above 0", 2)
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    listing = _own_listing(s, listing_id)
    symbol, decimals = s.escrow.token_info(str(listing["token"]))
    bps, off_units = _percent(off), _amount(amount_off, decimals, symbol)
    # A random number by default: coupons of one number share one count, and nothing on-chain
    # says which numbers were signed but never used.
    number = coupon_id if coupon_id is not None else secrets.randbits(63) + 1
    terms = Coupon(
        listing_id=0 if whole_product else listing_id,
        sku=bytes(listing["sku"]) if whole_product else bytes(32),
        buyer=to_checksum_address(buyer) if buyer else ZERO_ADDRESS,
        discount_bps=bps,
        amount_off=off_units,
        max_uses=uses,
        expiry=int(time.time() + days * 86_400),
        id=number,
    )
    price = int(listing["unit_price"])
    try:
        coupons.check_terms(terms)
        unit, _ = coupon_prices(price, None, bps, off_units)
        signed = s.escrow.sign_coupon(s.wallet, terms)
    except (CouponError, ValueError) as exc:
        raise fail(f"{exc}; nothing signed", 2) from exc
    text = signed.text()
    query = f"?ref={to_checksum_address(reseller)}&coupon={text}" if reseller else f"?coupon={text}"
    used = s.escrow.storage.coupon_uses(s.wallet.address, number)
    scope = (
        f"every listing of product 0x{bytes(listing['sku']).hex()[:12]}…"
        if whole_product
        else f"listing {listing_id}"
    )
    limit = "no use limit" if uses == 0 else f"{uses} use(s)"
    console.print(
        f"[green]✓[/green] coupon {number} for {scope}: {_units(price, symbol, decimals)} → "
        f"{_units(unit, symbol, decimals)} a code at the listing's price; {limit}; until "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(terms.expiry))}"
        + (f"; only for {terms.buyer}" if buyer else ""),
        soft_wrap=True,
    )
    if used:
        console.print(
            f"[yellow]note[/yellow]: number {number} has {used} counted use(s) already; coupons of "
            "one number share their count",
            soft_wrap=True,
        )
    console.print(f"coupon: {text}", soft_wrap=True)
    console.print(f"link: {s.api.base_url}/#/buy/{listing_id}{query}", soft_wrap=True)


@supplier_app.command("revoke-coupon")
def revoke_coupon(
    coupon_id: Annotated[int, typer.Argument(help="The coupon's number.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
    rpc_url: RpcOption = None,
) -> None:
    """End every coupon you signed with this number, whatever uses it had left (one way)."""
    if not 0 <= coupon_id < 2**64:
        raise fail("a coupon number fits 64 bits", 2)
    s = connect(api, load_wallet(key_file, dev, keystore=keystore), rpc_url)
    used = s.escrow.storage.coupon_uses(s.wallet.address, coupon_id)
    if used == coupons.REVOKED:
        console.print(f"coupon {coupon_id} was revoked already; nothing sent")
        return
    try:
        res = s.escrow.revoke_coupon(s.wallet, coupon_id)
    except KamengError as exc:
        raise fail(describe_error(exc)) from exc
    console.print(
        f"[green]✓[/green] coupon {coupon_id} revoked after {used} counted use(s): tx {res.tx_hash}"
    )
