"""Every page works on a 360-pixel-wide phone without scrolling sideways (issue 18).

At a 360x780 viewport the test visits every route with something on it (the store, a product's
comparison, the buy page, the orders, a delivered order with its codes open, a transaction, the
alerts, the supplier dashboard, a reseller's page and its shop, the arbiter's console with an open
dispute and the operator console) and checks the document is no wider than the window; a failure
names the elements whose right edge passes the screen's. At each stop it also runs axe-core: no
page or state may have a serious or critical accessibility violation (the failure lists every one
met on the walk); the pages richest in colour (an order with its checks, a dispute, the operator
console) are checked in the dark colour scheme too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from axe_support import accessibility_problems, dark_problems
from eth_utils import keccak
from playwright.sync_api import expect
from web_support import OVERFLOW, TIMEOUT_MS, WebStack, connect_dev_wallet, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

WIDTH, HEIGHT = 360, 780

#: The serious and critical axe-core findings met so far on the walk (asserted at its end, so
#: that one run names them all).
_axe: list[str] = []


def assert_fits(page: Page, name: str, *, dark: bool = False) -> None:
    """The page is no wider than the screen; its axe-core findings go to `_axe` (with `dark`,
    also those of the colour rules in the dark scheme)."""
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= found["width"], (
        f"the {name} page is {found['scroll']} px wide on a {found['width']} px screen; "
        "past the edge:\n" + "\n".join(found["out"])
    )
    _axe.extend(accessibility_problems(page, name))
    if dark:
        _axe.extend(dark_problems(page, name))


def visit(page: Page, url: str, marker: str, name: str) -> None:
    page.goto(url)
    expect(page.locator(marker).first).to_be_visible()
    assert_fits(page, name)


def test_every_page_fits_a_360_pixel_screen_and_passes_axe(
    stack: WebStack, browser: Browser
) -> None:
    from backend.client import KamengClient
    from contracts.encoding import Order

    _axe.clear()
    stack.stock_listing(4)
    listing = stack.catalog_listing(stack.dev.listing_id)
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, stack.dev.listing_id, 2)
    # Another buyer's order, disputed, for the arbiter's console.
    other = stack.new_account(ether=5)
    disputed = stack.buy_over_api(other, stack.dev.listing_id, 1)
    from backend.client import ApiError

    def delivered(client: KamengClient) -> object:
        try:
            d = client.order(disputed, other)
        except ApiError:  # not in the mirror yet
            return None
        return d if int(d.state) == 2 else None

    with KamengClient(stack.url) as client:
        detail = stack.wait_until("the disputed order to be delivered", lambda: delivered(client))
    stack.escrow.tx.reset_nonce(other.address)
    stack.escrow.dispute(
        other,
        disputed,
        Order.from_record(detail),
        "data:,the%20code%20was%20already%20redeemed",
        keccak(b"the code was already redeemed"),
    )

    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    base = f"{stack.url}/#"
    visit(page, base + "/", '[data-test="product"]', "store")
    visit(page, f"{base}/product/{listing['sku']}", '[data-test="compare-row"]', "product")
    visit(page, f"{base}/buy/{stack.dev.listing_id}", '[data-test="pay"]', "buy")
    visit(page, base + "/orders", '[data-test="gate-connect"]', "orders (no wallet)")
    connect_dev_wallet(page, buyer)
    sign_in(page)
    expect(page.get_by_test_id("order-row")).to_have_count(1)
    assert_fits(page, "orders")
    visit(page, f"{base}/order/{oid}", '[data-test="open-codes"]', "order")
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("code-text")).to_have_count(2)
    page.get_by_test_id("proof-toggle").click()
    expect(page.get_by_test_id("release-check").first).to_be_visible()
    assert_fits(page, "order (codes and proof open)", dark=True)
    paid_tx = page.locator("a.txlink").first.get_attribute("href") or ""
    visit(page, base + paid_tx.lstrip("#"), '[data-test="tx"]', "transaction")
    visit(page, base + "/alerts", '[data-test="endpoint-add"]', "alerts")

    page.get_by_test_id("disconnect").click()
    page.goto(base + "/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    expect(page.get_by_test_id("listing-row").first).to_be_visible()
    assert_fits(page, "supplier dashboard")

    # A reseller's page and its shop (issue 15): the listing opened to resellers, in a shop.
    escrow, lid = stack.escrow, stack.dev.listing_id
    price = int(listing["unit_price"])
    escrow.set_reseller_price(stack.dev.supplier, lid, price)
    reseller = stack.new_account(ether=1)
    escrow.set_shop_price(reseller, lid, price + 1)
    page.get_by_test_id("disconnect").click()
    page.goto(base + "/reseller")
    connect_dev_wallet(page, reseller)
    expect(page.get_by_test_id("resell-row").first).to_be_visible()
    assert_fits(page, "reseller")
    visit(page, f"{base}/s/{reseller.address}", '[data-test="shop-item"]', "shop")
    escrow.set_reseller_price(stack.dev.supplier, lid, 0)

    page.get_by_test_id("disconnect").click()
    page.goto(base + "/arbiter")
    connect_dev_wallet(page, stack.dev.arbiter)
    sign_in(page)
    row = page.locator(f'[data-test="dispute-row"][data-order="{disputed}"]')
    expect(row).to_be_visible()
    assert_fits(page, "arbiter queue")
    row.get_by_test_id("review").click()
    expect(page.get_by_test_id("check").first).to_be_visible()
    assert_fits(page, "arbiter dispute", dark=True)

    page.get_by_test_id("disconnect").click()
    page.goto(base + "/operator")
    connect_dev_wallet(page, stack.dev.admin)
    sign_in(page)
    expect(page.get_by_test_id("op-overview")).to_be_visible()
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    assert_fits(page, "operator console", dark=True)
    context.close()
    assert not _axe, "axe-core found serious or critical violations:\n" + "\n".join(_axe)
