"""Codes survive the platform (issue 16): the recovery page works from backend/web/dist served
as plain static files, with no kameng server, against a bare anvil node.

On the chain: one order delivered with deliverOnChain (its sealed release in ReleasePublished),
one delivered the old way (only its digest on-chain), one not delivered yet, and an order of
another buyer. In Chromium, with a browser wallet answering in Python: the page finds the
buyer's three orders from OrderPaid logs, opens the published release with the key re-derived
from one signature (the buy transaction's nonce), checks it against the chain, and shows exactly
the codes sold, with a working Copy button; the other two orders get their plain status. The
node refuses log ranges over 4 blocks, as public nodes cap them, and the page narrows its ranges.
An address that is no escrow, and a wallet on another chain, are each told in one line.

With a kameng server: the supplier turns on on-chain delivery for a listing from the dashboard
(asked first: one way, 32 codes an order), and the store then shows the listing's badge and the
buy form caps the quantity at 32; the delivery agent then publishes the next sale on-chain, and
the recovery page, starting from the server's chain, opens it with the development wallet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect
from web_support import (
    InjectedWallet,
    WebStack,
    connect_dev_wallet,
    new_page,
    screenshot,
    sign_in,
)

from backend.keys import next_order_key, public_key_bytes
from backend.release import CodeToSeal, published_from_manifest, seal_release
from bench.world import commit_codes, make_world
from contracts.chain import free_port
from contracts.encoding import commitment, split_order_id
from tests.integration.serve_support import capped_node

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser

    from bench.world import World
    from contracts.chain import AnvilNode, Chain

DIST = Path(__file__).resolve().parents[2] / "backend" / "web" / "dist"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        del format, args


@pytest.fixture()
def static_site() -> Iterator[str]:
    """backend/web/dist served as plain files (Python's http.server): no kameng API at all."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(_Quiet, directory=str(DIST)))
    thread = threading.Thread(target=server.serve_forever, name="static-dist", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture()
def capped(node: tuple[AnvilNode, Chain]) -> Iterator[tuple[str, list[int]]]:
    """The test's anvil behind a node front that refuses log ranges over 4 blocks."""
    with capped_node(node[0].url, 4) as front:
        yield front


class NodeWallet(InjectedWallet):
    """The tests' browser wallet, asking a node directly (there is no kameng /rpc here)."""

    def __init__(self, rpc_url: str, account: LocalAccount, chain_id: int) -> None:
        super().__init__(cast(Any, None), account, chain_id)
        self.rpc_url = rpc_url

    def _rpc(self, method: str, params: list[Any]) -> Any:
        self._rpc_id += 1
        body = {"jsonrpc": "2.0", "id": self._rpc_id, "method": method, "params": params}
        answer = self._http.post(self.rpc_url, json=body).json()
        assert "error" not in answer, answer
        return answer["result"]


def _buy(world: World, buyer: LocalAccount, listing_id: int, quantity: int) -> Any:
    """A purchase as the web makes it: the key derived for the buy transaction's nonce."""
    escrow = world.escrow
    key, _nonce = next_order_key(escrow, buyer)
    escrow.tx.reset_nonce(buyer.address)
    price = escrow.listing(listing_id)["unit_price"]
    oid, order, _res = escrow.buy(
        buyer, listing_id, quantity, max_unit_price=price, buyer_pubkey=public_key_bytes(key)
    )
    return oid, order, key


def test_codes_come_back_from_the_chain_with_no_kameng_server(
    node: tuple[AnvilNode, Chain],
    capped: tuple[str, list[int]],
    static_site: str,
    browser: Browser,
) -> None:
    anvil, chain = node
    node_url, refused = capped
    world = make_world(chain, buyers=2)
    escrow = world.escrow
    buyer, stranger = world.buyers
    listing_id, _ = escrow.create_listing(
        world.supplier, sku=world.sku, unit_price=10**15, delivery_window=3600
    )
    escrow.deposit_bond(world.supplier, 10**18)
    codes = [f"STEAM-{i:04d}-RECOVER-{i * 7919 % 9973:04d}".encode() for i in range(8)]
    salts, tree = commit_codes(world, listing_id, codes)

    def to_seal(oid: int, quantity: int) -> list[CodeToSeal]:
        _, first = split_order_id(oid)
        return [
            CodeToSeal(
                index=i,
                code=codes[i],
                salt=salts[i],
                commitment=commitment(salts[i], codes[i]),
                batch_index=0,
                batch_root=tree.root,
                proof=tree.proof(i),
            )
            for i in range(first, first + quantity)
        ]

    # Delivered on-chain: the sealed release travels in the delivery transaction.
    onchain, onchain_order, onchain_key = _buy(world, buyer, listing_id, 2)
    built = seal_release(
        chain_id=chain.chain_id,
        escrow=escrow.address,
        order_id=onchain,
        buyer_pubkey=public_key_bytes(onchain_key),
        codes=to_seal(onchain, 2),
    )
    published = published_from_manifest(built.sealed, built.manifest)
    escrow.deliver_on_chain(world.delivery_key, [(onchain, onchain_order, built.digest, published)])
    # Delivered off-chain: only the digest is on-chain.
    offchain, offchain_order, offchain_key = _buy(world, buyer, listing_id, 1)
    other = seal_release(
        chain_id=chain.chain_id,
        escrow=escrow.address,
        order_id=offchain,
        buyer_pubkey=public_key_bytes(offchain_key),
        codes=to_seal(offchain, 1),
    )
    escrow.deliver(world.delivery_key, [(offchain, offchain_order, other.digest)])
    # Paid, not delivered yet; and someone else's order, which is none of this page's business.
    waiting, _, _ = _buy(world, buyer, listing_id, 1)
    _buy(world, stranger, listing_id, 1)

    wallet = NodeWallet(anvil.url, buyer, chain.chain_id)
    context, page = new_page(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=static_site)
    wallet.install(context)
    # No kameng API behind these files: GET /chain is a plain 404.
    assert httpx.get(f"{static_site}/chain").status_code == 404
    # The page reads the chain through a node that refuses log ranges over 4 blocks.
    page.goto(f"{static_site}/#/recover?rpc={quote(node_url, safe='')}&escrow={escrow.address}")
    expect(page.locator("#chain-info")).to_contain_text("No kameng server")
    expect(page.get_by_test_id("recover-rpc")).to_have_value(node_url)
    expect(page.get_by_test_id("recover-escrow")).to_have_value(escrow.address)

    # Not an escrow, and a wallet on another chain: one line each (it offers the switch).
    page.get_by_test_id("recover-escrow").fill(buyer.address)
    page.get_by_test_id("recover-start").click()
    expect(page.get_by_test_id("recover-message")).to_have_text(
        f"There is no kameng escrow at {buyer.address} on chain {chain.chain_id}."
    )
    page.get_by_test_id("recover-escrow").fill(escrow.address)
    wallet.chain_id = 1
    page.get_by_test_id("recover-start").click()
    expect(page.get_by_test_id("recover-message")).to_contain_text(
        f"Your wallet is on chain 1, but this escrow is on chain {chain.chain_id}."
    )
    page.get_by_test_id("recover-switch").click()
    rows = page.get_by_test_id("recover-order")
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("recover-message")).to_contain_text("Found 3 orders", timeout=60_000)
    status = {
        int(row.get_attribute("data-order") or 0): row.get_attribute("data-status")
        for row in rows.all()
    }
    assert status == {onchain: "recovered", offchain: "offchain", waiting: "pending"}
    row = page.locator(f'[data-test="recover-order"][data-order="{offchain}"]')
    expect(row).to_contain_text("these codes live only with the platform")
    # The codes come first, exactly the ones sold, each checked against the chain.
    shown = page.get_by_test_id("recover-codes").get_by_test_id("code-text")
    expect(shown).to_have_text([c.decode() for c in codes[0:2]])
    expect(page.get_by_test_id("recover-code")).to_have_count(2)
    for item in page.get_by_test_id("recover-code").all():
        assert item.get_attribute("data-ok") == "true"
    # It asked for logs in ranges the node accepts, after the node refused wider ones.
    assert refused and max(refused) > 4
    # One signature for the one published release; nothing was sent.
    assert wallet.requests.count("personal_sign") == 1
    assert "eth_sendTransaction" not in wallet.requests
    page.get_by_test_id("recover-code").first.get_by_test_id("copy-code").click()
    expect(page.get_by_test_id("recover-code").first.get_by_test_id("copied")).to_contain_text(
        "Copied"
    )
    assert page.evaluate("navigator.clipboard.readText()") == codes[0].decode()
    screenshot(page, "recover-static")
    # It fits a 360-pixel phone.
    page.set_viewport_size({"width": 360, "height": 780})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Other routes say this copy only recovers codes, instead of waiting for a server.
    page.goto(f"{static_site}/#/orders")
    expect(page.locator("#app")).to_contain_text("only the recovery page works here")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_supplier_keeps_codes_on_chain_and_the_store_says_so(
    stack: WebStack, browser: Browser
) -> None:
    listing_id = stack.dev.listing_id
    stack.stock_listing(40)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{listing_id}"]')
    expect(row.get_by_test_id("listing-onchain")).to_have_count(0)
    # Asked first, in the page: one way, at most 32 codes an order. Cancel changes nothing.
    row.get_by_test_id("onchain-listing").click()
    ask = row.get_by_test_id("onchain-ask")
    expect(ask).to_contain_text("one way")
    expect(ask).to_contain_text("at most 32 codes")
    row.get_by_test_id("onchain-no").click()
    expect(ask).to_be_hidden()
    assert stack.escrow.listing(listing_id)["on_chain_from"] == 0
    row.get_by_test_id("onchain-listing").click()
    row.get_by_test_id("onchain-yes").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text(
        f"Listing #{listing_id} now delivers on the blockchain"
    )
    sold = stack.escrow.listing(listing_id)["sold"]
    assert stack.escrow.listing(listing_id)["on_chain_from"] == sold + 1
    expect(row.get_by_test_id("listing-onchain")).to_be_visible()
    expect(row.get_by_test_id("onchain-listing")).to_have_count(0)
    # The store and the buy form: the badge, and orders capped at 32 codes.
    page.goto(f"{stack.url}/#/")
    offer = page.locator(f'[data-test="offer"][data-listing="{listing_id}"]')
    expect(offer.get_by_test_id("onchain-badge")).to_contain_text(
        "you can recover them even if this shop disappears"
    )
    page.goto(f"{stack.url}/#/buy/{listing_id}")
    expect(page.get_by_test_id("onchain-badge")).to_contain_text("At most 32 codes per order")
    quantity = page.get_by_test_id("quantity")
    expect(quantity).to_have_attribute("max", "32")
    quantity.fill("33")
    expect(page.get_by_test_id("buy-message")).to_contain_text("at most 32 codes")
    expect(page.get_by_test_id("pay")).to_be_disabled()
    quantity.fill("32")
    expect(page.get_by_test_id("pay")).to_be_enabled()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()

    # A sale from then on: the delivery agent publishes it on-chain, and #/recover, with this
    # server there, starts from its chain and escrow and opens it with the development wallet.
    buyer = stack.new_account()
    oid = stack.buy_over_api(buyer, listing_id, 2)
    stack.wait_until(
        f"order {oid} to be delivered on-chain", lambda: stack.escrow.published_releases([oid])
    )
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/recover")
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("recover-escrow")).to_have_value(stack.escrow.address)
    expect(page.get_by_test_id("recover-rpc")).to_have_value(f"{stack.url}/rpc")
    page.get_by_test_id("recover-start").click()
    expect(page.get_by_test_id("recover-message")).to_contain_text("Found 1 order")
    order = page.locator(f'[data-test="recover-order"][data-order="{oid}"]')
    expect(order).to_have_attribute("data-status", "recovered")
    expect(page.get_by_test_id("recover-code").get_by_test_id("code-text")).to_have_text(
        stack.codes_of_order(oid, 2)
    )
    # The order's own page says its codes are kept on-chain, and links here.
    page.goto(f"{stack.url}/#/order/{oid}")
    sign_in(page)
    expect(page.get_by_test_id("order-onchain")).to_contain_text("also kept on the blockchain")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
