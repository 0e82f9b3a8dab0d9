"""A revoked licence in the browser: the store stops offering the listing, and its buy page says
why and will not take a payment; a renewed licence brings it back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_utils import keccak
from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_revoked_licence_stops_sales_in_the_store(stack: WebStack, browser: Browser) -> None:
    dev = stack.dev
    stack.stock_listing(3)
    buyer = stack.new_account(ether=5)
    stack.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, b"\x00" * 32)
    stack.wait_until(
        "the revocation in the mirror",
        lambda: not stack.catalog_listing(dev.listing_id)["licensed"],
    )
    context, page = new_page(browser)
    page.goto(stack.url)
    expect(page.get_by_text("No products are listed yet")).to_be_visible()
    expect(page.get_by_test_id("product")).to_have_count(0)
    page.goto(f"{stack.url}/#/buy/{dev.listing_id}")
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("buy-message")).to_contain_text("withdrawn this supplier's licence")
    expect(page.get_by_test_id("pay")).to_be_disabled()
    expect(page.get_by_test_id("pay")).to_have_text("Not licensed")

    stack.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, keccak(text="renewed"))
    stack.wait_until(
        "the renewal in the mirror", lambda: stack.catalog_listing(dev.listing_id)["licensed"]
    )
    page.reload()
    expect(page.get_by_test_id("pay")).to_be_enabled()
    expect(page.get_by_test_id("buy-message")).to_be_empty()
    page.goto(stack.url)
    expect(page.get_by_test_id("product")).to_have_count(1)
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
