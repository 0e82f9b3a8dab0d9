"""Issue 18: the crypto library (libsodium's WebAssembly, about a third of the site's JavaScript)
is loaded only where it is needed: the store and the product pages never fetch it; opening an
order's codes does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_the_store_loads_no_crypto_and_an_order_page_loads_it_when_codes_open(
    stack: WebStack, browser: Browser
) -> None:
    stack.stock_listing(2)
    buyer = stack.new_account(ether=5)
    order_id = stack.buy_over_api(buyer, stack.dev.listing_id, 1)
    context, page = new_page(browser)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(stack.url + "/#/")
    expect(page.locator('[data-test="product"]').first).to_be_visible()
    sku = stack.catalog_listing(stack.dev.listing_id)["sku"]
    page.goto(f"{stack.url}/#/product/{sku}")
    expect(page.locator('[data-test="compare-row"]').first).to_be_visible()
    scripts = [u for u in fetched if u.endswith(".js")]
    assert any(u.endswith("/app.js") for u in scripts), scripts
    assert not [u for u in scripts if "libsodium" in u], scripts

    page.goto(f"{stack.url}/#/order/{order_id}")
    connect_dev_wallet(page, buyer)
    sign_in(page)
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("code").first).to_be_visible()
    assert [u for u in fetched if "libsodium" in u and u.endswith(".js")], fetched
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
