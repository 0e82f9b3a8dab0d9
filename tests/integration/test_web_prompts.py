"""Issue 18: a first-time buyer with a browser wallet goes from the store to a code on screen in
at most two wallet prompts for a purchase in the chain's coin (the signature that derives the
order key, the payment) and three in a token (the allowance first), with no Sign-In with
Ethereum on the way: the sealed release needs no sign-in, and the order page opens it with the
key the buy page derived."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect
from web_support import USDT, InjectedWallet, WebStack, new_page, prompts

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: What a Sign-In with Ethereum message (EIP-4361) says; the order key's text never does.
SIWE = "wants you to sign in with your Ethereum account"


@pytest.fixture(scope="module")
def usdt_listing(stack: WebStack) -> int:
    """The development supplier's listing in the development world's USDT, with 2 codes."""
    return stack.usdt_listing(3 * USDT, 2)


@pytest.mark.parametrize("kind", ["native", "token"])
def test_store_to_code_on_screen_in_two_prompts_or_three_in_a_token(
    stack: WebStack, browser: Browser, usdt_listing: int, kind: str
) -> None:
    native = kind == "native"
    listing_id = stack.dev.listing_id if native else usdt_listing
    if native:
        stack.stock_listing(1)
    buyer = stack.new_account(ether=5)
    if not native:
        token = stack.usdt()
        stack.escrow.tx.send(stack.dev.admin, token.functions.mint(buyer.address, 10 * USDT))
    context, page = new_page(browser, phone=True)
    wallet = InjectedWallet(stack, buyer)
    wallet.install(context)

    # The shop link, with the wallet connected first: prompts are counted from here.
    page.goto(f"{stack.url}/#/")
    page.get_by_test_id("connect").click()
    page.get_by_test_id("connect-injected").click()
    expect(page.get_by_test_id("wallet-address")).to_be_visible()
    assert prompts(wallet) == []

    page.locator(f'a[href="#/buy/{listing_id}"]').first.click()
    page.get_by_test_id("pay").click()
    expect(page).to_have_url(re.compile(r"#/order/\d+$"))
    oid = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("code-text")).to_have_text(stack.codes_of_order(oid, 1))
    expect(page.get_by_test_id("release-verdict")).to_have_text("all checks pass")

    asked = prompts(wallet)
    # native: the order key, the payment; token: the allowance, the order key, the payment.
    expected = ["personal_sign", "eth_sendTransaction"]
    if not native:
        expected = ["eth_sendTransaction", *expected]
    assert asked == expected, asked
    assert len(wallet.signed) == 1 and "unlock the codes of one order" in wallet.signed[0]
    assert not any(SIWE in text for text in wallet.signed)
    assert page.errors == []  # type: ignore[attr-defined]

    # The order's link opened later in another tab of the same browser (a notification's link):
    # the codes again, for one prompt (the order key) and no sign-in.
    later = context.new_page()
    later.goto(f"{stack.url}/#/order/{oid}")
    expect(later.get_by_test_id("order-state")).to_have_text("Delivered")
    later.get_by_test_id("open-codes").click()
    expect(later.get_by_test_id("code-text")).to_have_text(stack.codes_of_order(oid, 1))
    assert prompts(wallet) == [*expected, "personal_sign"], prompts(wallet)
    assert not any(SIWE in text for text in wallet.signed)
    context.close()
