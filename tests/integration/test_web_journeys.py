"""Three journeys through the web front-end in a real browser (headless Debian Chromium).

1. A buyer buys, watches the order go from paid to delivered, opens and checks the codes in the
   browser, and confirms.
2. A supplier opens a listing, uploads codes (a file with bad lines first), and watches a sale
   settle, then withdraws.
3. A buyer disputes with a text and a file; an arbiter reviews the evidence and the checklist,
   rules, and the buyer sees the outcome.

Plus the buyer's reclaim after a missed delivery deadline, and the connect dialog by keyboard
alone. Each test checks what a person sees and saves a screenshot to docs/screenshots/.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
from axe_support import assert_accessible
from playwright.sync_api import expect
from web_support import (
    WebStack,
    connect_dev_wallet,
    new_page,
    screenshot,
    sign_in,
    write_csv,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser

PRODUCT = "Demo Gift Card 10"
#: A phone's screen (an iPhone 12 to 15's, in CSS pixels).
PHONE = {"width": 390, "height": 844}


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def order_id_of(url: str) -> int:
    match = re.search(r"#/order/(\d+)$", url)
    assert match, url
    return int(match.group(1))


def test_buyer_buys_receives_checks_and_confirms(stack: WebStack, browser: Browser) -> None:
    stack.stock_listing(12)
    in_stock = stack.catalog_listing(stack.dev.listing_id)["stock"]
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(stack.url)

    # The storefront lists the product with its supplier's offer and stock.
    card = page.get_by_test_id("product").filter(has_text=PRODUCT)
    expect(card).to_contain_text(f"{in_stock} in stock")
    expect(card.get_by_test_id("offer")).to_contain_text("0.01 ETH")
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("wallet-address")).to_have_text(short(buyer.address))
    expect(page.get_by_text("DEV WALLET")).to_be_visible()

    card.get_by_role("link", name="Buy").click()
    expect(page.get_by_role("heading", name=f"Buy {PRODUCT}")).to_be_visible()
    page.get_by_test_id("quantity").fill("2")
    expect(page.get_by_test_id("total")).to_have_text("0.02 ETH")

    # Pay while the supplier is slow: the page shows the order paid, then delivered, by itself.
    with stack.hold_deliveries():
        page.get_by_test_id("pay").click()
        expect(page).to_have_url(re.compile(r"#/order/\d+$"))
        expect(page.get_by_test_id("order-state")).to_have_text("Paid")
        expect(page.get_by_test_id("order-status")).to_contain_text(
            "Waiting for the supplier to deliver"
        )
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    expect(page.get_by_test_id("order-status")).to_contain_text("Delivered! Open your codes")

    # Open the sealed release in the browser: every code checks out against the chain.
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("release-verdict")).to_have_text("all checks pass")
    expect(page.get_by_test_id("release-check")).to_have_count(5)
    for check in page.get_by_test_id("release-check").all():
        expect(check).to_have_attribute("data-ok", "true")
    oid = order_id_of(page.url)
    expect(page.get_by_test_id("code-text")).to_have_text(stack.codes_of_order(oid, 2))
    expect(page.get_by_test_id("code-verdict")).to_have_text(["pass", "pass"])

    # The same page on a phone: the codes, with their copy buttons, fill the first screen.
    page.set_viewport_size(PHONE)
    page.evaluate("window.scrollTo(0, 0)")
    codes = page.get_by_test_id("codes").bounding_box()
    assert codes and codes["y"] + codes["height"] <= PHONE["height"], codes
    screenshot(page, "phone-buyer-order", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_test_id("confirm").click()
    page.get_by_test_id("confirm-yes").click()  # the in-page "are you sure?"
    expect(page.get_by_test_id("order-outcome")).to_contain_text("Confirmed. The supplier is paid")
    expect(page.get_by_test_id("order-state")).to_have_text("Completed")
    expect(page.get_by_test_id("order-events")).to_contain_text("OrderConfirmed")
    screenshot(page, "buyer-order")

    # The transaction link shows the confirmation on-chain.
    page.get_by_test_id("order-events").get_by_role("link").last.click()
    expect(page.get_by_test_id("tx-event")).to_contain_text("OrderConfirmed")

    # Buying and opening the codes needed no sign-in; the order list does.
    page.goto(f"{stack.url}/#/orders")
    sign_in(page)
    expect(page.get_by_test_id("order-row")).not_to_have_count(0)

    # Disconnecting signs out on the server too: the token is refused from then on.
    key = f"kameng.session.{buyer.address.lower()}"
    token = page.evaluate(f"JSON.parse(localStorage.getItem('{key}')).token")
    with page.expect_response("**/auth/logout") as out:
        page.get_by_test_id("disconnect").click()
    assert out.value.status == 200
    assert page.evaluate(f"localStorage.getItem('{key}')") is None
    me = httpx.get(stack.url + "/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401 and "session revoked" in me.json()["detail"]
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_supplier_uploads_codes_and_sees_the_sale_settle(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    supplier = stack.dev.supplier
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, supplier)
    sign_in(page)
    expect(page.get_by_role("heading", name="Supplier dashboard")).to_be_visible()

    # Open a new listing for the product the supplier is licensed for.
    page.get_by_test_id("new-sku").fill("demo-gift-card-10")
    page.get_by_test_id("new-sku").blur()
    expect(page.get_by_test_id("new-sku-info")).to_contain_text("licensed for you")
    page.get_by_test_id("new-price").fill("0.02")
    page.get_by_test_id("open-listing").click()
    expect(page.get_by_test_id("open-listing-message")).to_contain_text("is open")
    listing_id = int(
        re.search(r"Listing #(\d+)", page.get_by_test_id("open-listing-message").inner_text())[1]  # type: ignore[index]
    )
    row = page.locator(f'[data-test="listing-row"][data-listing="{listing_id}"]')
    expect(row.get_by_test_id("listing-stock")).to_have_text("0")
    expect(page.get_by_text(f"(listing #{listing_id}) has 0 codes left")).to_be_visible()

    # A file with bad lines is refused whole, naming the lines.
    page.get_by_test_id("upload-listing").select_option(str(listing_id))
    bad = write_csv(tmp_path, "bad.csv", ["WEB-A1", "WEB-A2", "WEB-A1", "X" * 300, "WEB-A3"])
    page.get_by_test_id("upload-file").set_input_files(bad)
    page.get_by_test_id("upload").click()
    errors = page.get_by_test_id("upload-error-line")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text(re.compile(r"^3\s*duplicate", re.IGNORECASE))
    expect(errors.nth(1)).to_contain_text(re.compile(r"^4\s*.*256", re.IGNORECASE))
    expect(page.get_by_test_id("upload-errors")).to_contain_text("Nothing was stored")
    expect(row.get_by_test_id("listing-stock")).to_have_text("0")

    # A good file is committed on-chain, with progress, and the stock appears.
    codes = stack.codes(25, prefix="WEB")
    page.get_by_test_id("upload-file").set_input_files(write_csv(tmp_path, "codes.csv", codes))
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("upload-message")).to_contain_text(
        f"Committed 25 codes to listing #{listing_id} as batch 0"
    )
    stack.listing_codes[listing_id] = codes
    expect(row.get_by_test_id("listing-stock")).to_have_text("25")
    expect(page.get_by_text(f"(listing #{listing_id}) has")).to_have_count(0)

    # A buyer buys two codes and confirms: the dashboard shows the sale settle, by itself.
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, listing_id, 2)
    expect(row.get_by_test_id("listing-stock")).to_have_text("23")
    stack.confirm_over_api(buyer, oid)
    reference = f"L{oid >> 32}-{oid & 0xFFFFFFFF}"  # the order's reference (fmt.js orderRef)
    settlement = page.get_by_test_id("settlement-row").filter(has_text=reference)
    expect(settlement).to_contain_text("0.0392 ETH")  # 0.04 less the 2% platform fee
    expect(settlement.get_by_role("link")).to_contain_text("block")
    expect(page.get_by_test_id("orders-by-state")).to_contain_text("completed")
    expect(page.get_by_test_id("sales-chart")).to_be_visible()
    expect(page.get_by_test_id("withdrawable-amount")).not_to_have_text("0 ETH")
    screenshot(page, "supplier-dashboard")

    page.get_by_test_id("withdraw").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text("Withdrew")
    expect(page.get_by_test_id("withdrawable-amount")).to_have_text("0 ETH")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_arbiter_rules_a_dispute_with_evidence(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    stack.stock_listing(3)
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    oid = order_id_of(page.url)
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("release-verdict")).to_have_text("all checks pass")

    # The buyer disputes: the code was redeemed already. The evidence is a text and a file.
    proof = tmp_path / "issuer-reply.txt"
    proof.write_text("Issuer support: this code was redeemed on 2026-11-20, before the sale.\n")
    page.get_by_test_id("dispute-text").fill("The code says 'already redeemed' at the issuer.")
    page.get_by_test_id("dispute-file").set_input_files(proof)
    page.get_by_test_id("dispute").click()
    expect(page.get_by_test_id("order-outcome")).to_contain_text(
        "your order key is in the evidence"
    )
    expect(page.get_by_test_id("order-state")).to_have_text("Disputed")

    # The arbiter sees the dispute in the queue with its deadline.
    a_context, arbiter = new_page(browser)
    arbiter.goto(f"{stack.url}/#/arbiter")
    connect_dev_wallet(arbiter, stack.dev.arbiter)
    sign_in(arbiter)
    row = arbiter.locator(f'[data-test="dispute-row"][data-order="{oid}"]')
    expect(row).to_contain_text("left")
    row.get_by_test_id("review").click()

    # The evidence bundle, verified against the chain claim by claim; with the buyer's key the
    # sealed release is tied to the on-chain digest.
    expect(arbiter.get_by_test_id("bundle-verdict")).to_have_text("verified against the chain")
    claims = arbiter.get_by_test_id("claim")
    expect(claims.filter(has_text="release.digest")).to_have_attribute("data-status", "pass")
    expect(arbiter.locator('[data-test="claim"][data-status="fail"]')).to_have_count(0)
    bundle_hash = arbiter.get_by_test_id("server-bundle-hash").inner_text()

    # The same facts, recomputed in the browser from the chain's events.
    checks = arbiter.get_by_test_id("check")
    expect(checks).to_have_count(4)
    for check in checks.all():
        expect(check).to_have_attribute("data-ok", "true")
    evidence = arbiter.get_by_test_id("evidence")
    expect(evidence).to_have_count(1)
    expect(evidence).to_contain_text("already redeemed")
    expect(evidence.get_by_test_id("evidence-file")).to_have_text("issuer-reply.txt")
    expect(evidence).to_contain_text("matches the document")
    expect(evidence).to_contain_text("file hash")

    # Rule: full refund and half the bond to the buyer.
    arbiter.get_by_test_id("buyer-share").fill("100")
    arbiter.get_by_test_id("slash").fill("50")
    expect(arbiter.get_by_test_id("ruling-summary")).to_contain_text(
        "0.01 ETH of the payment plus 0.0005 ETH slashed from the bond"
    )
    arbiter.get_by_test_id("reason").select_option("code-already-redeemed")
    arbiter.get_by_test_id("rule").click()
    result = arbiter.get_by_test_id("ruling-result")
    expect(result).to_contain_text("Ruling recorded on-chain")
    expect(result).to_contain_text("Buyer credited 0.0105 ETH")
    expect(row).to_contain_text("ruled")
    screenshot(arbiter, "arbiter-console")

    # The ruling's transaction, and the buyer's side.
    result.get_by_role("link").click()
    ruled = arbiter.get_by_test_id("tx-event").filter(has_text="DisputeRuled")
    expect(ruled).to_contain_text(bundle_hash)
    expect(page.get_by_test_id("order-state")).to_have_text("Resolved")
    page.goto(f"{stack.url}/#/orders")
    page.get_by_test_id("buyer-withdraw").click()
    expect(page.get_by_text("Withdrew 0.0105 ETH")).to_be_visible()
    assert page.errors == [] and arbiter.errors == []  # type: ignore[attr-defined]
    a_context.close()
    context.close()


def test_buyer_reclaims_the_payment_after_a_missed_deadline(
    stack: WebStack, browser: Browser
) -> None:
    stack.stock_listing(2)
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)
    with stack.hold_deliveries():
        page.get_by_test_id("pay").click()
        expect(page.get_by_test_id("order-state")).to_have_text("Paid")
        expect(page.get_by_test_id("refund")).to_be_disabled()
        stack.travel(3700)  # past the listing's one-hour delivery window
        expect(page.get_by_test_id("order-status")).to_contain_text("missed the delivery deadline")
        page.get_by_test_id("refund").click()
        expect(page.get_by_test_id("order-outcome")).to_contain_text("Refunded")
        expect(page.get_by_test_id("order-state")).to_have_text("Refunded")
    page.goto(f"{stack.url}/#/orders")
    sign_in(page)  # the purchase needed none; the order list does
    expect(page.get_by_test_id("buyer-withdraw")).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_pages_fit_a_phone_screen(stack: WebStack, browser: Browser) -> None:
    """Every page reads on a 390-pixel-wide phone: nothing is wider than the screen."""
    context, page = new_page(browser, phone=True)
    page.goto(stack.url)
    expect(page.get_by_test_id("product").first).to_be_visible()
    connect_dev_wallet(page, stack.dev.supplier)
    pages = {
        "store": ("#/", "product"),
        "product": (
            f"#/product/{stack.catalog_listing(stack.dev.listing_id)['sku']}",
            "compare-row",
        ),
        "buy": (f"#/buy/{stack.dev.listing_id}", "pay"),
        "supplier": ("#/supplier", "sign-in"),
    }
    for name, (fragment, marker) in pages.items():
        page.goto(f"{stack.url}/{fragment}")
        expect(page.get_by_test_id(marker).first).to_be_visible()
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the {name} page is {overflow} px wider than a phone screen"
    sign_in(page)
    expect(page.get_by_test_id("listings")).to_be_visible()
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"the supplier dashboard is {overflow} px wider than a phone screen"
    page.goto(stack.url)
    expect(page.get_by_test_id("product").first).to_be_visible()
    screenshot(page, "phone-store")
    context.close()


#: Where the focus is: its data-test (or tag and text), and whether it is inside the dialog.
_FOCUS = """() => {
  const el = document.activeElement;
  const name = el.dataset.test || `${el.tagName.toLowerCase()} ${(el.textContent || "").trim()}`;
  return { name, inside: Boolean(el.closest("[role=dialog]")) };
}"""
#: How many controls the open dialog has for Tab to stop at.
_STOPS = """() => [...document.querySelector("[role=dialog]").querySelectorAll(
  "a[href], button:not([disabled]), input:not([disabled]), select, textarea"
)].filter((el) => el.getClientRects().length).length"""


def test_the_connect_dialog_holds_the_keyboard_and_esc_gives_it_back(
    stack: WebStack, browser: Browser
) -> None:
    """With the keyboard alone: Enter on "Connect wallet" opens the dialog with the focus in it,
    Tab and Shift+Tab go round its controls and never behind it, Esc closes it and the focus is
    back on the button. axe-core finds nothing serious with the dialog open (light and dark)."""
    context, page = new_page(browser)
    page.goto(stack.url)
    expect(page.get_by_test_id("product").first).to_be_visible()
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")
    opener = page.get_by_test_id("connect")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Connect a wallet")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("connect-dev")).to_be_focused()
    first = page.evaluate(_FOCUS)
    stops = page.evaluate(_STOPS)
    assert stops >= 3, stops  # close, the development wallet, its key field, import
    walk = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        walk.append(page.evaluate(_FOCUS))
    assert all(f["inside"] for f in walk), walk
    assert len({f["name"] for f in walk}) == stops, walk  # each control once ...
    assert walk[-1] == first, walk  # ... and round to the first again
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(_FOCUS) == walk[-2]
    assert_accessible(page, "connect dialog", dark=True)
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(opener).to_be_focused()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
