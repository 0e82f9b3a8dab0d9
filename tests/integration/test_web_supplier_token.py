"""A supplier's stablecoins on the web (issue 15), in a real browser: the dashboard offers every
ERC-20 the escrow accepts besides the chain's coin; a bond deposit in the token approves exactly
the amount and deposits it (a wallet short of the token is told so before anything is signed);
a listing is priced in the token's own decimals (a price finer than the token's smallest unit is
refused in the page); earnings in the token show beside the coin's and are withdrawn on their own.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from eth_utils import to_checksum_address
from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page, sign_in

from contracts.artifacts import load

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page

USDT = 10**6


@pytest.fixture(scope="module")
def usdt(stack: WebStack) -> Any:
    """The development world's 6-decimal USDT (allowed by the escrow), 1,000 of it minted to the
    dev supplier through its public faucet."""
    dev, escrow, chain = stack.dev, stack.escrow, stack.chain
    assert dev.usdt is not None
    token = chain.w3.eth.contract(address=to_checksum_address(dev.usdt), abi=load("TestToken").abi)
    escrow.tx.send(dev.supplier, token.functions.mint(dev.supplier.address, 1_000 * USDT))
    stack.wait_until(
        "the token in GET /catalog/tokens",
        lambda: token.address in httpx.get(f"{stack.url}/catalog/tokens").json(),
    )
    return token


def token_balance(token: Any, address: str) -> int:
    return int(token.functions.balanceOf(address).call())


def open_dashboard(stack: WebStack, browser: Browser) -> tuple[Any, Page]:
    """The dev supplier's dashboard, signed in."""
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, stack.dev.supplier)
    sign_in(page)
    expect(page.get_by_role("heading", name="Supplier dashboard")).to_be_visible()
    return context, page


def test_supplier_bonds_and_lists_in_a_stablecoin(
    stack: WebStack, browser: Browser, usdt: Any
) -> None:
    supplier = stack.dev.supplier.address
    w3 = stack.chain.w3
    context, page = open_dashboard(stack, browser)
    usdt_option = re.compile(rf"^USDT · {usdt.address[:6]}…{usdt.address[-4:]}$")
    for selector in ("new-token", "bond-token"):
        expect(page.get_by_test_id(selector).locator("option")).to_have_text(
            ["ETH (the chain's coin)", usdt_option]
        )
        expect(page.get_by_test_id(selector)).to_have_value("0x" + "0" * 40)  # the coin first

    # The bond card reads amounts in the chosen token.
    page.get_by_test_id("bond-token").select_option(usdt.address)
    expect(page.get_by_text("Amount (USDT)")).to_be_visible()
    expect(page.get_by_test_id("bond-of-token")).to_have_text(
        "USDT bond: 0 USDT free, 0 USDT reserved."
    )

    # More than the wallet holds: refused before anything is signed.
    nonce = w3.eth.get_transaction_count(supplier)
    page.get_by_test_id("bond-amount").fill("1000.5")
    page.get_by_test_id("bond-deposit").click()
    expect(page.get_by_test_id("bond-message")).to_contain_text(
        "Your wallet holds 1,000 USDT, less than the 1,000.5 USDT to deposit. "
        "Nothing was signed or sent."
    )
    assert w3.eth.get_transaction_count(supplier) == nonce

    # 100 USDT: the wallet approves exactly 100 USDT, then deposits them (no coin sent).
    page.get_by_test_id("bond-amount").fill("100")
    page.get_by_test_id("bond-deposit").click()
    expect(page.get_by_test_id("bond-message")).to_contain_text("Deposited 100 USDT of bond.")
    assert stack.escrow.bond_of(supplier, usdt.address) == (100 * USDT, 0)
    assert w3.eth.get_transaction_count(supplier) == nonce + 2  # approve, depositBond
    assert usdt.functions.allowance(supplier, stack.escrow.address).call() == 0  # used up
    assert token_balance(usdt, supplier) == 900 * USDT
    expect(page.get_by_test_id("bond-of-token")).to_have_text(
        "USDT bond: 100 USDT free, 0 USDT reserved."
    )
    expect(page.get_by_test_id("bond-free")).to_contain_text("100 USDT")

    # A listing priced in USDT, read in its 6 decimals.
    page.get_by_test_id("new-sku").fill("demo-gift-card-10")
    page.get_by_test_id("new-sku").blur()
    expect(page.get_by_test_id("new-sku-info")).to_contain_text("licensed for you")
    page.get_by_test_id("new-token").select_option(usdt.address)
    expect(page.get_by_text("Unit price (USDT)")).to_be_visible()
    listings = int(stack.escrow.call("listingCount"))
    nonce = w3.eth.get_transaction_count(supplier)
    page.get_by_test_id("new-price").fill("1.9999999")
    page.get_by_test_id("open-listing").click()
    expect(page.get_by_test_id("open-listing-message")).to_contain_text(
        "1.9999999 has too many decimal places: a price in USDT has at most 6 decimal places. "
        "Nothing was signed or sent."
    )
    assert w3.eth.get_transaction_count(supplier) == nonce
    assert int(stack.escrow.call("listingCount")) == listings

    page.get_by_test_id("new-price").fill("1.99")
    page.get_by_test_id("open-listing").click()
    message = page.get_by_test_id("open-listing-message")
    expect(message).to_contain_text("is open at 1.99 USDT a code")
    listing_id = int(re.search(r"Listing #(\d+)", message.inner_text())[1])  # type: ignore[index]
    on_chain = stack.escrow.listing(listing_id)
    assert on_chain["unit_price"] == 1_990_000
    assert on_chain["token"] == usdt.address
    row = page.locator(f'[data-test="listing-row"][data-listing="{listing_id}"]')
    expect(row).to_contain_text("1.99 USDT")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_earnings_in_the_token_are_withdrawn_on_their_own(
    stack: WebStack, browser: Browser, usdt: Any
) -> None:
    dev, escrow = stack.dev, stack.escrow
    supplier = dev.supplier
    escrow.tx.reset_nonce(supplier.address)  # the browser of the test before sent from it
    escrow.tx.send(supplier, usdt.functions.approve(escrow.address, 10 * USDT))
    escrow.deposit_bond(supplier, 10 * USDT, token=usdt.address)
    listing_id, _ = escrow.create_listing(
        supplier, sku=dev.sku, unit_price=5 * USDT, token=usdt.address, metadata_uri="kameng:usdt"
    )
    stack.stock_listing(2, listing_id)
    buyer = stack.new_account(ether=5)
    escrow.tx.send(dev.admin, usdt.functions.mint(buyer.address, 5 * USDT))
    escrow.tx.send(buyer, usdt.functions.approve(escrow.address, 5 * USDT))
    oid = buy_in_token(stack, buyer, listing_id)
    stack.confirm_over_api(buyer, oid)
    credit = escrow.balance_of(supplier.address, usdt.address)
    assert credit > 0

    context, page = open_dashboard(stack, browser)
    coin_row = page.locator('[data-test="withdrawable-row"][data-token="0x' + "0" * 40 + '"]')
    usdt_row = page.locator(f'[data-test="withdrawable-row"][data-token="{usdt.address}"]')
    expect(usdt_row.get_by_test_id("withdrawable-amount")).to_have_text(f"{credit / USDT:g} USDT")
    expect(coin_row).to_be_visible()
    # The sales chart counts the token in its own units, apart from the coin.
    expect(page.get_by_label("Cumulative sales and settlements in USDT")).to_be_visible()
    expect(page.get_by_text(f"Settled to you: {credit / USDT:.2f} USDT")).to_be_visible()
    coin_before = escrow.balance_of(supplier.address)
    held = token_balance(usdt, supplier.address)
    usdt_row.get_by_test_id("withdraw").click()
    expect(page.get_by_test_id("withdraw-message")).to_contain_text(
        f"Withdrew {credit / USDT:g} USDT to"
    )
    expect(usdt_row).to_have_count(0)  # nothing left in the token
    assert token_balance(usdt, supplier.address) == held + credit
    assert escrow.balance_of(supplier.address, usdt.address) == 0
    assert escrow.balance_of(supplier.address) == coin_before  # the coin's balance untouched
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_token_no_longer_accepted_is_refused_before_any_approval(
    stack: WebStack, browser: Browser, usdt: Any
) -> None:
    dev, escrow = stack.dev, stack.escrow
    supplier = dev.supplier.address
    escrow.tx.reset_nonce(supplier)  # the browser of the tests before sent from it
    escrow.tx.send(dev.supplier, usdt.functions.approve(escrow.address, USDT))
    escrow.deposit_bond(dev.supplier, USDT, token=usdt.address)
    escrow.set_token_allowed(dev.admin, usdt.address, False)
    try:
        stack.wait_until(
            "the token gone from GET /catalog/tokens",
            lambda: usdt.address not in httpx.get(f"{stack.url}/catalog/tokens").json(),
        )
        context, page = open_dashboard(stack, browser)
        # No new listing in it; its bond may still be taken out, but no more put in.
        expect(page.get_by_test_id("new-token").locator("option")).to_have_count(1)
        page.get_by_test_id("bond-token").select_option(usdt.address)
        nonce = stack.chain.w3.eth.get_transaction_count(supplier)
        page.get_by_test_id("bond-amount").fill("1")
        page.get_by_test_id("bond-deposit").click()
        expect(page.get_by_test_id("bond-message")).to_contain_text(
            "That payment token is not accepted by the platform."
        )
        assert stack.chain.w3.eth.get_transaction_count(supplier) == nonce
        assert usdt.functions.allowance(supplier, escrow.address).call() == 0
        assert page.errors == []  # type: ignore[attr-defined]
        context.close()
    finally:
        escrow.set_token_allowed(dev.admin, usdt.address, True)


def buy_in_token(stack: WebStack, buyer: LocalAccount, listing_id: int) -> int:
    """The buyer pays for one code in the listing's ERC-20 (approved already); returns the id."""
    from backend.keys import next_order_key, public_key_bytes

    price = int(stack.catalog_listing(listing_id)["unit_price"])
    key, _nonce = next_order_key(stack.escrow, buyer)
    stack.escrow.tx.reset_nonce(buyer.address)
    oid, _order, _res = stack.escrow.buy(
        buyer, listing_id, 1, max_unit_price=price, buyer_pubkey=public_key_bytes(key), value=0
    )
    return oid
