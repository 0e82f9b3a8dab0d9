"""The order page leads with the code (issue 18): a buyer who has never held a wallet sees the
codes first, copies them, reads in plain words when the seller is paid, and confirms only after
seeing them and saying so twice. The proof behind the codes is folded away."""

from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page, sign_in

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page


def _local_time(page: Page, ts: int, locale: str = "en") -> str:
    return str(
        page.evaluate(
            "([ts, locale]) => new Intl.DateTimeFormat(locale, "
            "{dateStyle: 'medium', timeStyle: 'short'}).format(new Date(ts * 1000))",
            [ts, locale],
        )
    )


def test_the_codes_come_first_and_confirming_asks_once_more(
    stack: WebStack, browser: Browser
) -> None:
    stack.stock_listing(2)
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, stack.dev.listing_id, 2)
    codes = stack.codes_of_order(oid, 2)
    deadline = _delivered(stack, buyer, oid)
    context, page = new_page(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    page.goto(f"{stack.url}/#/order/{oid}")
    connect_dev_wallet(page, buyer)
    sign_in(page)
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")

    # Plain words about the money, the date in the reader's format.
    expect(page.get_by_test_id("plain-status")).to_have_text(
        "The seller is paid only when you confirm, or automatically on "
        f"{_local_time(page, deadline)} if you do nothing. If a code does not work, open a "
        "dispute before then."
    )
    # Confirming is locked until the codes were seen here.
    expect(page.get_by_test_id("confirm")).to_be_disabled()
    expect(page.get_by_test_id("order-outcome")).to_be_empty()

    # The proof is folded away: digest and order key are there, but not shown.
    proof = page.get_by_test_id("proof")
    expect(proof).not_to_have_attribute("open", "")
    expect(page.get_by_test_id("release-digest")).to_be_hidden()

    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("code-text")).to_have_text(codes)
    # The codes are the first thing on the page: above the status card.
    first = page.evaluate(
        """() => {
          const codes = document.querySelector('[data-test="codes"]');
          const status = document.querySelector('[data-test="order-status"]');
          return Boolean(codes.compareDocumentPosition(status) & Node.DOCUMENT_POSITION_FOLLOWING);
        }"""
    )
    assert first, "the codes are not above the order's status"
    expect(page.get_by_test_id("redeem-hint")).to_contain_text("To redeem a code")
    expect(page.get_by_test_id("release-check").first).to_be_hidden()

    # Copy: the clipboard holds the code, and the page says so.
    code = page.get_by_test_id("code").nth(1)
    code.get_by_test_id("copy-code").click()
    expect(code.get_by_test_id("copied")).to_have_text("✓ Copied")
    assert page.evaluate("navigator.clipboard.readText()") == codes[1]

    # The Merkle checklist opens on demand.
    page.get_by_test_id("proof-toggle").click()
    expect(page.get_by_test_id("release-check")).to_have_count(5)
    expect(page.get_by_test_id("release-check").first).to_be_visible()
    expect(page.get_by_test_id("proof-codes")).to_contain_text("✓ Merkle proof verifies")

    # Confirm asks once more; Cancel sends nothing.
    confirm = page.get_by_test_id("confirm")
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(page.get_by_test_id("confirm-ask")).to_contain_text(
        "Pay the seller now? This cannot be undone."
    )
    page.get_by_test_id("confirm-no").click()
    expect(page.get_by_test_id("confirm-ask")).to_be_hidden()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    assert stack.escrow.order_hash(oid) != bytes(32)
    confirm.click()
    page.get_by_test_id("confirm-yes").click()
    expect(page.get_by_test_id("order-outcome")).to_contain_text("Confirmed")
    expect(page.get_by_test_id("order-state")).to_have_text("Completed")
    # The codes stay at the top after the order completes.
    expect(page.get_by_test_id("code-text")).to_have_text(codes)
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_the_plain_status_speaks_chinese(stack: WebStack, browser: Browser) -> None:
    stack.stock_listing(1)
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, stack.dev.listing_id, 1)
    deadline = _delivered(stack, buyer, oid)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/order/{oid}")
    page.get_by_test_id("lang-zh-CN").click()
    connect_dev_wallet(page, buyer)
    sign_in(page)
    expect(page.get_by_test_id("plain-status")).to_contain_text(
        f"将于 {_local_time(page, deadline, 'zh-CN')} 自动付款给卖家"
    )
    expect(page.get_by_test_id("proof-toggle")).to_contain_text("证明")
    context.close()


def _delivered(stack: WebStack, buyer: LocalAccount, oid: int) -> int:
    """The order's deadline once it is delivered (read as the buyer, through the API)."""
    from backend.client import ApiError, KamengClient

    def delivered(client: KamengClient) -> object:
        try:
            d = client.order(oid, buyer)
        except ApiError:  # not in the mirror yet
            return None
        return d if int(d.state) == 2 else None

    with KamengClient(stack.url) as client:
        detail = stack.wait_until(f"order {oid} to be delivered", lambda: delivered(client))
    return int(detail.deadline)
