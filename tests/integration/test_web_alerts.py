"""The Alerts page in a real browser (issue 13): a buyer adds a webhook, sees its secret once,
sends a test message that a real receiver gets with a valid signature, then is told by itself
when its codes are ready, and removes the endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook
from web_support import WebStack, connect_dev_wallet, new_page, screenshot, sign_in

from tests.backend.api_helpers import poll
from tests.backend.notify_helpers import receiver

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_buyer_adds_a_webhook_tests_it_and_hears_of_the_delivery(
    stack: WebStack, browser: Browser
) -> None:
    stack.stock_listing(5)
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(stack.url + "/#/alerts")
    connect_dev_wallet(page, buyer)
    sign_in(page)
    expect(page.get_by_test_id("no-endpoints")).to_be_visible()
    with receiver() as hook:
        page.get_by_test_id("endpoint-target").fill(hook.url)
        page.get_by_test_id("endpoint-add").click()
        secret_box = page.get_by_test_id("endpoint-secret")
        expect(secret_box).to_contain_text("whsec_")
        secret = secret_box.locator("code").inner_text()
        expect(page.get_by_test_id("endpoint")).to_have_count(1)
        expect(page.get_by_test_id("endpoint")).to_contain_text(hook.url)
        page.get_by_test_id("endpoint-test").click()
        expect(page.get_by_test_id("endpoint-test-result")).to_contain_text("got through")
        tests = hook.of_type("endpoint.test")
        assert len(tests) == 1
        Webhook(secret).verify(tests[0].body, tests[0].headers)
        screenshot(page, "alerts")

        # Bought elsewhere (the buy page has its own journey test): the webhook hears of it.
        order_id = stack.buy_over_api(buyer, stack.dev.listing_id, 1)
        delivered = poll(
            "order.delivered at the buyer's webhook",
            lambda: [
                r
                for r in hook.of_type("order.delivered")
                if r.json["data"]["order_id"] == str(order_id)
            ],
            timeout=60,
        )
        Webhook(secret).verify(delivered[0].body, delivered[0].headers)
        assert delivered[0].json["data"]["link"].endswith(f"#/order/{order_id}")

        page.get_by_test_id("endpoint-remove").click()
        expect(page.get_by_test_id("no-endpoints")).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
