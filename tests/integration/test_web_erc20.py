"""Paying in an ERC-20 token in a real browser: the page asks for the allowance first, then buys;
the codes open and verify, and the confirmation pays the supplier in the token. A buyer without
enough of the token is told so before anything is signed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from eth_utils import to_checksum_address
from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page

from contracts.artifacts import load
from contracts.client import deploy_contract

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser

USDC = 10**6
PRICE = 5 * USDC


@dataclass
class TokenListing:
    """A listing priced in a 6-decimal test token, stocked with codes."""

    listing_id: int
    token: Any  # the web3 contract


@pytest.fixture(scope="module")
def usdc_listing(stack: WebStack) -> TokenListing:
    """The development supplier's listing in "USDC", bonded in the token, with 4 codes."""
    dev, escrow, chain = stack.dev, stack.escrow, stack.chain
    address, _ = deploy_contract(chain, dev.admin, "TestToken", "USD Coin", "USDC")
    escrow.tx.reset_nonce(dev.admin.address)  # deploy_contract signed with its own transactor
    token = chain.w3.eth.contract(address=to_checksum_address(address), abi=load("TestToken").abi)
    escrow.set_token_allowed(dev.admin, token.address, True)
    mint(stack, token, dev.supplier, 1_000 * USDC)
    escrow.tx.send(dev.supplier, token.functions.approve(escrow.address, 2**256 - 1))
    escrow.deposit_bond(dev.supplier, 100 * USDC, token=token.address)
    listing_id, _ = escrow.create_listing(
        dev.supplier,
        sku=dev.sku,
        unit_price=PRICE,
        token=token.address,
        bond_bps=1000,
        metadata_uri="kameng:dev/usdc",
    )
    listing = TokenListing(listing_id, token)
    stack.stock_listing(4, listing_id)
    return listing


def mint(stack: WebStack, token: Any, to: LocalAccount, amount: int) -> None:
    """Mint the test token (anyone may) to `to`."""
    stack.escrow.tx.send(stack.dev.admin, token.functions.mint(to.address, amount))


def balance(listing: TokenListing, address: str) -> int:
    return int(listing.token.functions.balanceOf(address).call())


def test_buyer_approves_then_buys_in_the_token_and_confirms(
    stack: WebStack, browser: Browser, usdc_listing: TokenListing
) -> None:
    buyer = stack.new_account(ether=5)
    mint(stack, usdc_listing.token, buyer, 12 * USDC)
    escrow_before = balance(usdc_listing, stack.escrow.address)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{usdc_listing.listing_id}")
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("unit-price")).to_have_text("5 USDC")
    page.get_by_test_id("quantity").fill("2")
    expect(page.get_by_test_id("total")).to_have_text("10 USDC")

    page.get_by_test_id("pay").click()
    expect(page).to_have_url(re.compile(r"#/order/\d+$"), timeout=60_000)
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    oid = int(page.url.rsplit("/", 1)[1])
    # The allowance was asked for exactly the order's amount, and the buy used all of it.
    allowance = usdc_listing.token.functions.allowance(buyer.address, stack.escrow.address).call()
    assert allowance == 0
    assert balance(usdc_listing, buyer.address) == 2 * USDC
    assert balance(usdc_listing, stack.escrow.address) == escrow_before + 10 * USDC

    page.get_by_test_id("open-codes").click()
    expect(page.get_by_test_id("release-verdict")).to_have_text("all checks pass")
    expect(page.get_by_test_id("code-text")).to_have_text(stack.codes_of_order(oid, 2))
    page.get_by_test_id("confirm").click()
    page.get_by_test_id("confirm-yes").click()  # the in-page "are you sure?"
    expect(page.get_by_test_id("order-state")).to_have_text("Completed")
    fee_bps = int(stack.catalog_listing(usdc_listing.listing_id)["fee_bps"])
    credit = stack.escrow.balance_of(stack.dev.supplier.address, usdc_listing.token.address)
    assert credit == 10 * USDC - 10 * USDC * fee_bps // 10_000  # in the token, less the fee
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_buyer_without_enough_of_the_token_is_told_before_signing(
    stack: WebStack, browser: Browser, usdc_listing: TokenListing
) -> None:
    buyer = stack.new_account(ether=5)
    mint(stack, usdc_listing.token, buyer, 3 * USDC)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{usdc_listing.listing_id}")
    connect_dev_wallet(page, buyer)
    nonce = stack.chain.w3.eth.get_transaction_count(buyer.address)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("buy-message")).to_contain_text(
        "Insufficient funds: 1 code(s) cost 5 USDC, and your wallet holds 3 USDC."
    )
    expect(page.get_by_test_id("buy-message")).to_contain_text("Nothing was signed or sent")
    assert stack.chain.w3.eth.get_transaction_count(buyer.address) == nonce
    assert balance(usdc_listing, buyer.address) == 3 * USDC
    context.close()
