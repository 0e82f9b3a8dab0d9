"""Bad input in the browser: each gets a message on the page and leaves the state unchanged.

A wrong network, a rejected signature, insufficient funds, a quantity above stock, an upload
with bad lines (their numbers shown), and a connection lost during an order (a reload recovers
the order).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from axe_support import assert_accessible
from playwright.sync_api import expect
from web_support import (
    InjectedWallet,
    WebStack,
    connect_dev_wallet,
    new_page,
    settle_after_connect,
    sign_in,
    write_csv,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser, Route


@pytest.fixture(scope="module", autouse=True)
def stocked(stack: WebStack) -> None:
    """Six codes in the development listing before the module's first test."""
    stack.stock_listing(6)


def sold(stack: WebStack) -> int:
    return int(stack.catalog_listing(stack.dev.listing_id)["sold"])


def test_quantity_above_stock_is_refused(stack: WebStack, browser: Browser) -> None:
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)
    stock = int(stack.catalog_listing(stack.dev.listing_id)["stock"])
    expect(page.get_by_test_id("stock")).to_contain_text(f"{stock} of")
    before = sold(stack)

    page.get_by_test_id("quantity").fill(str(stock + 1))
    expect(page.get_by_test_id("buy-message")).to_contain_text(
        f"Only {stock} codes left in stock: choose at most {stock}"
    )
    expect(page.get_by_test_id("pay")).to_be_disabled()
    expect(page.get_by_test_id("total")).to_have_text("—")
    page.get_by_test_id("quantity").fill("0")
    expect(page.get_by_test_id("buy-message")).to_contain_text("at least 1")
    page.get_by_test_id("quantity").fill(str(stock))
    expect(page.get_by_test_id("buy-message")).to_be_empty()
    expect(page.get_by_test_id("pay")).to_be_enabled()
    assert sold(stack) == before
    context.close()


def test_insufficient_funds_are_reported_before_anything_is_signed(
    stack: WebStack, browser: Browser
) -> None:
    broke = stack.new_account(ether=0)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, broke)
    before = sold(stack)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("buy-message")).to_contain_text(
        "Insufficient funds: 1 code(s) cost 0.01 ETH plus gas, and your wallet holds 0 ETH"
    )
    expect(page.get_by_test_id("buy-steps")).to_be_empty()
    expect(page).to_have_url(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    assert sold(stack) == before

    # The development wallet takes test coins from the embedded chain's faucet, then pays.
    page.get_by_test_id("fund-dev").click()
    expect(page.get_by_test_id("wallet-balance")).to_have_text("100 ETH")
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("order-state")).to_be_visible()
    stack.wait_until("the sale in the catalog", lambda: sold(stack) == before + 1)
    context.close()


def test_wrong_network_is_refused_until_the_wallet_switches(
    stack: WebStack, browser: Browser
) -> None:
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    wallet = InjectedWallet(stack, buyer, chain_id=1)
    wallet.install(context)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    page.get_by_test_id("connect").click()
    page.get_by_test_id("connect-injected").click()
    expect(page.get_by_test_id("wrong-network")).to_contain_text("Wrong network (1)")
    # The new account re-renders the page: pay on the page that stays.
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")
    before = sold(stack)

    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("buy-message")).to_contain_text(
        "Wrong network: your wallet is on Ethereum mainnet (id 1), but kameng runs on chain "
        f"{stack.chain.chain_id}"
    )
    assert "personal_sign" not in wallet.requests
    assert "eth_sendTransaction" not in wallet.requests
    assert sold(stack) == before
    # The refusal, the red pill and the switch button read in both colour schemes.
    assert_accessible(page, "buy page on the wrong network", dark=True)

    # Switching networks in the wallet lets the same page go on: the injected wallet pays.
    page.get_by_test_id("switch-network").click()
    expect(page.get_by_test_id("wrong-network")).to_have_count(0)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    assert "eth_sendTransaction" in wallet.requests
    stack.wait_until("the sale in the catalog", lambda: sold(stack) == before + 1)
    context.close()


def test_rejected_signature_leaves_no_order(stack: WebStack, browser: Browser) -> None:
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    wallet = InjectedWallet(stack, buyer)
    wallet.reject_signatures = "unlock the codes"  # the per-order key
    wallet.install(context)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    page.get_by_test_id("connect").click()
    page.get_by_test_id("connect-injected").click()
    settle_after_connect(page, buyer.address)
    before = sold(stack)

    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("buy-message")).to_contain_text(
        "You rejected the request in your wallet. Nothing was signed or sent."
    )
    assert wallet.requests.count("personal_sign") == 1  # the refused key: buying needs no sign-in
    assert "eth_sendTransaction" not in wallet.requests
    assert sold(stack) == before
    expect(page.get_by_test_id("pending-payments")).to_be_empty()
    expect(page.get_by_test_id("pay")).to_be_enabled()
    context.close()


def test_upload_with_bad_lines_names_them_and_stores_nothing(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{stack.dev.listing_id}"]')
    committed = int(stack.catalog_listing(stack.dev.listing_id)["committed"])
    stock = str(int(stack.catalog_listing(stack.dev.listing_id)["stock"]))
    expect(row.get_by_test_id("listing-stock")).to_have_text(stock)

    path = tmp_path / "mixed.csv"
    path.write_bytes(b"BAD-1\nBAD-2\nBAD-1\n\xff\xfe\xfa\n" + b"Y" * 257 + b"\nBAD-3\n")
    page.get_by_test_id("upload-file").set_input_files(path)
    page.get_by_test_id("upload").click()
    box = page.get_by_test_id("upload-errors")
    expect(box).to_contain_text("Nothing was stored")
    lines = page.get_by_test_id("upload-error-line")
    expect(lines.first).to_be_visible()
    numbers = [t.split()[0] for t in lines.all_inner_texts()]
    assert "3" in numbers, numbers  # the duplicate of line 1
    assert "5" in numbers, numbers  # 257 bytes, over the limit
    assert_accessible(page, "supplier dashboard with a refused upload")
    expect(row.get_by_test_id("listing-stock")).to_have_text(stock)
    assert int(stack.catalog_listing(stack.dev.listing_id)["committed"]) == committed

    # An empty file is refused too, naming the file.
    page.get_by_test_id("upload-file").set_input_files(write_csv(tmp_path, "empty.csv", []))
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("upload-error-line").first).to_contain_text("file")
    context.close()


def test_lost_connection_during_an_order_recovers_on_reload(
    stack: WebStack, browser: Browser
) -> None:
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)

    # The connection drops right after the payment leaves the browser.
    cut = {"on": False}

    def network(route: Route) -> None:
        if cut["on"]:
            route.abort("internetdisconnected")
            return
        request = route.request
        if request.method == "POST" and "eth_sendRawTransaction" in (request.post_data or ""):
            route.fulfill(response=route.fetch())
            cut["on"] = True
            return
        route.continue_()

    page.route("**/*", network)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("buy-message")).to_contain_text("Lost the connection")
    expect(page.locator("#banner")).to_contain_text("Cannot reach the kameng server")

    # Back online, a reload finds the order that was paid while the page was cut off. The cut-off
    # page is closed while still offline and the same address opened again (what a reload does):
    # its own pending-payment poller, if it ran between going back online and the reload, would
    # resolve the payment there and take the pending entry with it (a CI flake of this test).
    url = page.url
    page.close()
    page = context.new_page()
    page.goto(url)
    recovered = page.get_by_test_id("recovered-order")
    expect(recovered).to_be_visible()
    expect(page.get_by_test_id("pending-payments")).to_contain_text("went through")
    recovered.click()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    context.close()


def test_a_tampered_release_fails_its_checks_and_cannot_be_confirmed(
    stack: WebStack, browser: Browser
) -> None:
    """The release's public proof material is altered on the way: the page shows which code
    fails against its on-chain commitment, and offers a dispute instead of a confirmation."""
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")

    def tamper(route: Route) -> None:
        answer = route.fetch()
        release = answer.json()
        first = release["codes"][0]["commitment"]
        release["codes"][0]["commitment"] = first[:-1] + ("0" if first[-1] != "0" else "1")
        route.fulfill(response=answer, json=release)

    page.route("**/buyer/orders/*/release", tamper)
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("release-verdict")).to_have_text("verification failed")
    expect(page.get_by_test_id("code-verdict")).to_have_text(["fail"])
    expect(page.get_by_test_id("code")).to_contain_text("✗ matches its commitment")
    expect(page.get_by_test_id("confirm")).to_be_disabled()
    expect(page.get_by_test_id("dispute")).to_be_enabled()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    context.close()
