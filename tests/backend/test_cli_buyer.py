"""`kameng buyer ...` against a served backend: buy, fetch, verify, confirm, dispute, refund,
and the failures a buyer must see (a tampered release, another buyer's order, too early)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import update
from typer.testing import CliRunner

from backend.cli import app
from backend.models import Release
from bench.world import demo_codes
from contracts.encoding import OrderState, commitment, leaf
from contracts.merkle import MerkleTree
from tests.backend.api_helpers import Served, poll, serve

runner = CliRunner()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=3) as s:
        s.upload(30)
        yield s


def kameng(served: Served, account: LocalAccount, *args: str, tmp: Path) -> tuple[int, str]:
    """Run `kameng buyer ...` as `account`; return the exit code and the flattened output."""
    key = tmp / f"{account.address}.key"
    key.write_text("0x" + bytes(account.key).hex())
    result = runner.invoke(
        app, ["buyer", *args, "--api", served.url, "--key-file", str(key)], env={"COLUMNS": "200"}
    )
    return result.exit_code, " ".join(result.output.split())


def _order_id(output: str) -> int:
    return int(output.split("order ", 1)[1].split(":", 1)[0])


def test_buy_verify_confirm(served: Served, tmp_path: Path) -> None:
    buyer = served.dev.buyers[0]
    code, out = kameng(served, buyer, "buy", str(served.dev.listing_id), "-q", "2", tmp=tmp_path)
    assert code == 0, out
    assert "paid into escrow" in out and "fetched and verified" in out
    assert "KMG-" not in out  # codes are masked unless --reveal
    oid = _order_id(out)
    saved = tmp_path / "release.json"
    code, out = kameng(served, buyer, "fetch", str(oid), "--out", str(saved), tmp=tmp_path)
    assert code == 0 and saved.exists(), out
    code, out = kameng(served, buyer, "verify", str(oid), "--reveal", tmp=tmp_path)
    assert code == 0 and "every code matches" in out, out
    assert "KMG-" in out  # revealed on the buyer's own terminal only when asked
    code, out = kameng(served, buyer, "confirm", str(oid), tmp=tmp_path)
    assert code == 0 and f"confirmed order {oid}" in out, out
    client = served.client()
    poll(
        "the confirmation in the mirror",
        lambda: client.order(oid, buyer).state == OrderState.COMPLETED,
    )
    code, out = kameng(served, buyer, "orders", tmp=tmp_path)
    assert code == 0 and str(oid) in out and "completed" in out


def test_tampered_ciphertext_is_caught_by_verify(served: Served, tmp_path: Path) -> None:
    buyer = served.dev.buyers[1]
    code, out = kameng(served, buyer, "buy", str(served.dev.listing_id), "--no-wait", tmp=tmp_path)
    assert code == 0, out
    oid = _order_id(out)
    client = served.client()
    poll(
        "the delivery in the mirror", lambda: client.order(oid, buyer).state == OrderState.DELIVERED
    )
    saved = tmp_path / "good.json"
    assert kameng(served, buyer, "fetch", str(oid), "--out", str(saved), tmp=tmp_path)[0] == 0
    with served.runtime.sessions() as session:
        sealed = session.get(Release, oid).sealed  # type: ignore[union-attr]
        flipped = sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]
        session.execute(update(Release).where(Release.order_id == oid).values(sealed=flipped))
        session.commit()
    code, out = kameng(served, buyer, "verify", str(oid), tmp=tmp_path)
    assert code == 1 and "FAILED verification" in out and "dispute" in out, out
    code, out = kameng(served, buyer, "confirm", str(oid), tmp=tmp_path)
    assert code == 1 and "not confirming" in out, out
    # the copy fetched before the tampering still verifies
    code, out = kameng(served, buyer, "verify", str(oid), "--file", str(saved), tmp=tmp_path)
    assert code == 0, out
    code, out = kameng(
        served, buyer, "dispute", str(oid), "--reason", "box does not open", tmp=tmp_path
    )
    assert code == 0 and f"disputed order {oid}" in out, out
    poll("the dispute in the mirror", lambda: client.order(oid, buyer).state == OrderState.DISPUTED)


def test_other_buyers_and_unknown_orders_are_refused(served: Served, tmp_path: Path) -> None:
    owner, other = served.dev.buyers[0], served.dev.buyers[2]
    code, out = kameng(served, owner, "buy", str(served.dev.listing_id), tmp=tmp_path)
    assert code == 0, out
    oid = _order_id(out)
    # The sealed release is public (docs/API.md): another wallet may fetch it, never open it.
    code, out = kameng(served, other, "fetch", str(oid), tmp=tmp_path)
    assert code == 0 and "saved the sealed release" in out, out
    code, out = kameng(served, other, "verify", str(oid), tmp=tmp_path)
    assert code == 1 and "bought by another account" in out, out
    code, out = kameng(served, other, "verify", str(oid + 1000), tmp=tmp_path)
    assert code == 1 and "404" in out, out


def test_refund_after_a_missed_deadline(served: Served, tmp_path: Path) -> None:
    """A second supplier, whose backend is not this one, never delivers."""
    chain, escrow, admin = served.runtime.chain, served.escrow, served.dev.admin
    silent = chain.new_account(ether=100)
    escrow.authorize(admin, silent.address, served.dev.sku, keccak(text="licence"))
    escrow.deposit_bond(silent, 10**18)
    lid, _ = escrow.create_listing(
        silent, sku=served.dev.sku, unit_price=10**16, delivery_window=600
    )
    salts = [os.urandom(32) for _ in range(3)]
    codes = demo_codes(3, 90_000)
    tree = MerkleTree(
        [leaf(i, commitment(s, c)) for i, (s, c) in enumerate(zip(salts, codes, strict=True))]
    )
    escrow.commit_batch(silent, lid, tree.root, 3)
    buyer = served.dev.buyers[2]
    client = served.client()
    poll(
        "the new listing in the catalog",
        lambda: [r for r in client.listings() if r.listing_id == lid and r.stock == 3],
    )
    code, out = kameng(served, buyer, "buy", str(lid), "--no-wait", tmp=tmp_path)
    assert code == 0, out
    oid = _order_id(out)
    code, out = kameng(served, buyer, "refund", str(oid), tmp=tmp_path)
    assert code == 1 and "has not passed" in out, out
    order = served.current(oid, buyer)
    chain.travel_to(order.deadline + 1)
    balance = chain.w3.eth.get_balance(buyer.address)
    code, out = kameng(served, buyer, "refund", str(oid), tmp=tmp_path)
    assert code == 0 and f"refunded order {oid}" in out and "withdrew" in out, out
    assert chain.w3.eth.get_balance(buyer.address) > balance
    poll("the refund in the mirror", lambda: client.order(oid, buyer).state == OrderState.REFUNDED)


def test_buy_in_a_resellers_shop(served: Served, tmp_path: Path) -> None:
    """`buy --reseller` pays the shop's price (read from the chain), and the order names the
    reseller and its cut; a malformed address or a shop without the listing sends nothing."""
    escrow, dev, lid = served.escrow, served.dev, served.dev.listing_id
    shop, empty = served.runtime.chain.new_account(), served.runtime.chain.new_account()
    escrow.set_reseller_price(dev.supplier, lid, 7 * 10**15)
    escrow.set_shop_price(shop, lid, 9 * 10**15)
    buyer = dev.buyers[2]
    w3 = served.runtime.chain.w3
    sent = w3.eth.get_transaction_count(buyer.address)
    code, out = kameng(served, buyer, "buy", str(lid), "--reseller", "0x12", tmp=tmp_path)
    assert code == 2 and "--reseller '0x12' is not an address" in out, out
    code, out = kameng(served, buyer, "buy", str(lid), "--reseller", empty.address, tmp=tmp_path)
    assert code == 1 and f"listing {lid} is not in the shop of {empty.address}" in out, out
    assert w3.eth.get_transaction_count(buyer.address) == sent  # nothing was sent
    code, out = kameng(
        served, buyer, "buy", str(lid), "-q", "2", "--reseller", shop.address.lower(), tmp=tmp_path
    )
    assert code == 0 and "fetched and verified" in out, out
    assert f"for {18 * 10**15} wei" in out
    assert f"bought in the shop of {shop.address} (its margin: {4 * 10**15} wei)" in out
    oid = _order_id(out)
    order = served.current(oid, buyer)
    assert (order.reseller, order.reseller_cut, order.amount) == (
        shop.address,
        4 * 10**15,
        18 * 10**15,
    )
    escrow.set_reseller_price(dev.supplier, lid, 0)  # closed to resellers: the shop cannot sell
    code, out = kameng(served, buyer, "buy", str(lid), "--reseller", shop.address, tmp=tmp_path)
    assert code == 1 and "its supplier closed it to resellers" in out, out


def test_buy_pays_the_volume_tier_the_quantity_reaches(served: Served, tmp_path: Path) -> None:
    """`buy -q N` pays the tier N reaches (read from the chain, as the escrow charges it) and says
    so; a quantity below every tier pays the listing's price."""
    escrow, dev, lid = served.escrow, served.dev, served.dev.listing_id
    buyer = dev.buyers[1]
    escrow.tx.reset_nonce(dev.supplier.address)
    escrow.set_tiers(dev.supplier, lid, [(2, 1_000)])
    try:
        code, out = kameng(served, buyer, "buy", str(lid), "-q", "2", tmp=tmp_path)
        assert code == 0 and "fetched and verified" in out, out
        assert f"volume tier: 2 codes at {9 * 10**15} a code instead of {10**16}" in out
        order = served.current(_order_id(out), buyer)
        assert order.amount == 18 * 10**15
        code, out = kameng(served, buyer, "buy", str(lid), "-q", "1", tmp=tmp_path)
        assert code == 0 and "volume tier" not in out, out
        assert served.current(_order_id(out), buyer).amount == 10**16
    finally:
        escrow.set_tiers(dev.supplier, lid, [])


def test_a_listing_delivered_on_chain_caps_orders_and_says_so(
    served: Served, tmp_path: Path
) -> None:
    """Last in this module: it turns the shared listing's on-chain delivery on, for good."""
    lid = served.dev.listing_id
    served.upload(40, start=1_000)  # enough stock that only the cap can refuse 33
    served.escrow.require_on_chain_release(served.dev.supplier, lid)
    client = served.client()
    poll(
        "the promise and the stock in the mirror",
        lambda: client.listing(lid).max_quantity_per_order == 32 and client.listing(lid).stock > 33,
    )
    buyer = served.dev.buyers[1]
    stock = client.listing(lid).stock
    code, out = kameng(served, buyer, "buy", str(lid), "-q", "33", tmp=tmp_path)
    assert code == 1 and "at most 32 in one order" in out, out
    assert client.listing(lid).stock == stock  # nothing was sent
    code, out = kameng(served, buyer, "buy", str(lid), "-q", "2", tmp=tmp_path)
    assert code == 0 and "fetched and verified" in out and "kameng recover" in out, out
    oid = _order_id(out)
    assert set(served.escrow.published_releases([oid])) == {oid}


def test_a_coupon_signed_in_the_supplier_cli_discounts_one_purchase(
    served: Served, tmp_path: Path
) -> None:
    """Issue 15: `supplier coupon` signs a coupon (nothing sent) and prints its text and link;
    `buyer buy --coupon` pays the discounted price; once used up, revoked or tampered with, the
    buyer's CLI says why and sends nothing."""
    import re
    from dataclasses import replace

    from contracts.coupons import REVOKED, Coupon

    dev, escrow, lid = served.dev, served.escrow, served.dev.listing_id
    w3 = served.runtime.chain.w3
    price = int(escrow.listing(lid)["unit_price"])
    key = tmp_path / "supplier.key"
    key.write_text("0x" + bytes(dev.supplier.key).hex())

    def supplier(*args: str) -> tuple[int, str]:
        result = runner.invoke(
            app,
            ["supplier", *args, "--api", served.url, "--key-file", str(key)],
            env={"COLUMNS": "200"},
        )
        return result.exit_code, " ".join(result.output.split())

    signed_by_supplier = w3.eth.get_transaction_count(dev.supplier.address)
    for args, says in (
        (["--off", "100"], "from 0 to below 100"),
        (["--off", "ten"], "give a percentage"),
        (["--off", "0"], "takes neither"),
        (["--off", "5", "--buyer", "nobody"], "is not an address"),
    ):
        code, out = supplier("coupon", str(lid), *args)
        assert code == 2 and says in out, out
    code, out = supplier("coupon", str(lid), "--off", "10", "--uses", "1", "--id", "77")
    assert code == 0 and "coupon 77 for listing" in out and "1 use(s)" in out, out
    match = re.search(r"coupon: (\S+)", out)
    assert match is not None, out
    text = match[1]
    assert f"link: {served.url}/#/buy/{lid}?coupon={text}" in out
    assert w3.eth.get_transaction_count(dev.supplier.address) == signed_by_supplier  # no tx
    coupon = Coupon.from_text(text)
    assert (coupon.listing_id, coupon.discount_bps, coupon.max_uses) == (lid, 1_000, 1)

    buyer = dev.buyers[2]
    tampered = replace(coupon, discount_bps=5_000)
    sent = w3.eth.get_transaction_count(buyer.address)
    code, out = kameng(
        served, buyer, "buy", str(lid), "--coupon", tampered.text(), "--no-wait", tmp=tmp_path
    )
    assert code == 1 and "EscrowBadSignature" in out and "nothing sent" in out, out
    code, out = kameng(served, buyer, "buy", str(lid), "--coupon", "kc1-not-a-coupon", tmp=tmp_path)
    assert code == 2 and "not a coupon" in out, out
    assert w3.eth.get_transaction_count(buyer.address) == sent

    link = f"{served.url}/#/buy/{lid}?coupon={text}"
    code, out = kameng(served, buyer, "buy", str(lid), "--coupon", link, "--no-wait", tmp=tmp_path)
    assert code == 0 and f"coupon 77: 1 code(s) at {price * 9 // 10}" in out, out
    order = served.current(_order_id(out), buyer)
    assert order.amount == price * 9 // 10
    assert escrow.storage.coupon_uses(dev.supplier.address, 77) == 1
    sent = w3.eth.get_transaction_count(buyer.address)
    code, out = kameng(served, buyer, "buy", str(lid), "--coupon", text, "--no-wait", tmp=tmp_path)
    assert code == 1 and "used 1 of 1 times" in out and "nothing sent" in out, out
    assert w3.eth.get_transaction_count(buyer.address) == sent

    escrow.tx.reset_nonce(dev.supplier.address)
    code, out = supplier("revoke-coupon", "77")
    assert code == 0 and "coupon 77 revoked after 1 counted use(s)" in out, out
    assert escrow.storage.coupon_uses(dev.supplier.address, 77) == REVOKED
    code, out = supplier("revoke-coupon", "77")
    assert code == 0 and "revoked already; nothing sent" in out, out
