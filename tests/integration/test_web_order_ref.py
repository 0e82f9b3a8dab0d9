"""Human order references (issue 18): the web shows "L2-17" (listing 2, low word 17) for the
on-chain order id 2 << 32 | 17, and takes either form in the order page's address.

The encoding is tested in the browser against fmt.js itself (bundled on the fly by esbuild, as
the build does), then through the pages.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from playwright.sync_api import expect
from web_support import ROOT, WebStack, connect_dev_wallet, new_page, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser

_BUNDLE = """
const esbuild = require("esbuild");
const out = esbuild.buildSync({
  entryPoints: ["backend/web/src/fmt.js"],
  bundle: true, format: "iife", globalName: "kamengFmt", write: false, platform: "browser",
  target: ["es2022"], logLevel: "error",
});
process.stdout.write(out.outputFiles[0].text);
"""


def ref(order_id: int) -> str:
    return f"L{order_id >> 32}-{order_id & 0xFFFFFFFF}"


def test_order_references_round_trip_in_the_browser(browser: Browser) -> None:
    bundle = subprocess.run(
        ["node", "-e", _BUNDLE], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    context, page = new_page(browser)
    page.set_content("<!doctype html><title>fmt</title>")
    page.add_script_tag(content=bundle)
    ids = [0, 1, 2 << 32, (2 << 32) | 17, (1 << 32) | 0xFFFFFFFF, (2**96 - 1) << 32 | 12345]
    encoded = page.evaluate(
        "ids => ids.map((id) => kamengFmt.orderRef(BigInt(id)))", [str(i) for i in ids]
    )
    assert encoded == [ref(i) for i in ids]
    assert encoded[3] == "L2-17"
    back = page.evaluate("refs => refs.map((r) => kamengFmt.parseOrderRef(r))", encoded)
    assert back == [str(i) for i in ids]
    # Either form, any case, with blanks around; anything else is refused.
    answers = page.evaluate(
        "xs => xs.map((x) => kamengFmt.parseOrderRef(x))",
        ["8589934609", " l2-17 ", "L2-4294967296", "L-1", "2-17", "L2-17x", "", "0x11", "L2--1"],
    )
    assert answers == ["8589934609", "8589934609", None, None, None, None, None, None, None]
    assert page.evaluate("() => kamengFmt.orderRef('8589934609')") == "L2-17"
    context.close()


def test_pages_show_the_reference_and_take_either_form(stack: WebStack, browser: Browser) -> None:
    stack.stock_listing(1)
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, stack.dev.listing_id, 1)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/orders")
    connect_dev_wallet(page, buyer)
    sign_in(page)
    link = page.get_by_test_id("order-ref")
    expect(link).to_have_text(ref(oid))
    expect(link.locator("[data-order-ref]")).to_have_attribute("title", f"On-chain order id {oid}")
    link.click()
    expect(page.locator("h1")).to_have_text(f"Order {ref(oid)}")
    expect(page.get_by_test_id("order-state")).to_be_visible()
    for form in (ref(oid), ref(oid).lower(), str(oid)):
        # The last form's page says the same: mark its heading, so that only a new one counts.
        page.locator("h1").evaluate("h => { h.dataset.old = '1' }")
        page.goto(f"{stack.url}/#/order/{form}")
        expect(page.locator("h1:not([data-old])")).to_have_text(f"Order {ref(oid)}")
        expect(page.get_by_test_id("order-state")).to_be_visible()
    page.goto(f"{stack.url}/#/order/L1-99999999999")
    expect(page.locator(".msg.error")).to_contain_text("not an order reference")

    # The supplier's dashboard shows references too.
    page.get_by_test_id("disconnect").click()
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    expect(page.locator("[data-order-ref]").filter(has_text=ref(oid)).first).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
