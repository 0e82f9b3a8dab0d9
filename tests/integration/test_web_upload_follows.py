"""The supplier's upload form follows the listing just opened (issue 18): after "Listing #N is
open", the form's selector has #N selected, and listings of the same product are told apart by
id and price ("#2 · Demo Gift Card 10 · 0.02 ETH")."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_the_upload_form_selects_the_listing_just_opened(stack: WebStack, browser: Browser) -> None:
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    select = page.get_by_test_id("upload-listing")
    expect(select).to_have_value(str(stack.dev.listing_id))
    expect(select.locator(f'option[value="{stack.dev.listing_id}"]')).to_have_text(
        f"#{stack.dev.listing_id} · Demo Gift Card 10 · 0.01 ETH"
    )

    # Two listings of the same product, one after the other: each time the form follows.
    for price in ("0.02", "0.03"):
        page.get_by_test_id("new-sku").fill("demo-gift-card-10")
        page.get_by_test_id("new-sku").blur()
        expect(page.get_by_test_id("new-sku-info")).to_contain_text("licensed for you")
        page.get_by_test_id("new-price").fill(price)
        page.get_by_test_id("open-listing").click()
        message = page.get_by_test_id("open-listing-message")
        expect(message).to_contain_text(f"is open at {price} ETH")
        found = re.search(r"Listing #(\d+)", message.inner_text())
        assert found, message.inner_text()
        listing_id = found[1]
        expect(select).to_have_value(listing_id)
        expect(select.locator("option:checked")).to_have_text(
            f"#{listing_id} · Demo Gift Card 10 · {price} ETH"
        )
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
