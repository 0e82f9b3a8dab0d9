"""The operator's console in Chromium, continued (issue 14): the attestation document of a licence
shown on the product page and checked there against the hash on-chain (a forged copy is called
out); the fees and time windows, checked against the contract's bounds in the page before
anything is sent and then changed on-chain; payment tokens allowed and stopped; and the
platform's fee income withdrawn to an address of the operator's choosing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from eth_utils import keccak
from playwright.sync_api import expect
from web_support import WebStack, eth_text, new_page, open_operator_console

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page

ZERO = "0x" + "00" * 20


def _open_console(stack: WebStack, browser: Browser, who: LocalAccount) -> tuple[Any, Page]:
    context, page = open_operator_console(stack, browser, who)
    expect(page.get_by_test_id("op-overview")).to_be_visible()
    return context, page


def _publish(stack: WebStack, document: bytes, name: str, supplier: str, sku: bytes) -> int:
    answer = httpx.put(
        f"{stack.url}/attestations/0x{keccak(document).hex()}",
        params={"name": name, "supplier": supplier, "sku": "0x" + sku.hex()},
        content=document,
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.status_code


def test_the_product_page_shows_the_document_and_checks_it(
    stack: WebStack, browser: Browser
) -> None:
    dev = stack.dev
    stack.stock_listing(1)
    document = b"The rights holder authorizes this supplier to sell Demo Gift Card 10.\n" * 10
    digest = keccak(document)
    stack.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, digest)
    assert _publish(stack, document, "rights-letter.txt", dev.supplier.address, dev.sku) == 201
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/product/0x{bytes(dev.sku).hex()}")
    doc = page.get_by_test_id("attestation-doc")
    expect(doc.get_by_test_id("attestation-doc-name")).to_have_text(
        f"Attestation document: rights-letter.txt ({len(document)} bytes)"
    )
    doc.get_by_test_id("attestation-check-button").click()
    verdict = doc.get_by_test_id("attestation-check")
    expect(verdict).to_contain_text("The document matches the hash on-chain ✓")
    expect(verdict).to_have_attribute("data-verdict", "match")
    save = verdict.get_by_test_id("attestation-save")
    expect(save).to_have_attribute("download", "rights-letter.txt")
    with page.expect_download() as download:
        save.click()
    assert Path(download.value.path()).read_bytes() == document

    # A server (or a proxy) handing out another file under the hash is caught in the browser.
    page.route(
        f"**/attestations/0x{digest.hex()}",
        lambda route: route.fulfill(status=200, body=b"forged", content_type="text/plain"),
    )
    # Click on the reloaded document, never the old one: the old page carries a marker (and its
    # verdict), the new one neither.
    page.evaluate("window.__beforeReload = true")
    page.reload()
    page.wait_for_function("window.__beforeReload === undefined")
    expect(verdict).not_to_have_attribute("data-verdict", "match")
    doc.get_by_test_id("attestation-check-button").click()
    expect(verdict).to_have_attribute("data-verdict", "mismatch")
    expect(verdict).to_contain_text("does NOT match the hash on-chain")
    expect(verdict).to_contain_text("Do not trust it.")
    expect(verdict.get_by_test_id("attestation-save")).to_have_count(0)
    page.unroute(f"**/attestations/0x{digest.hex()}")

    # A licence whose document nobody published says so, and the licence still shows.
    stack.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, keccak(text="unpublished"))
    page.reload()
    expect(page.get_by_test_id("attestation-doc-none")).to_have_text("document not published")
    expect(page.get_by_test_id("authorization")).to_contain_text("licensed ✓")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_fees_and_windows_are_checked_in_the_page_then_set(
    stack: WebStack, browser: Browser
) -> None:
    admin = stack.dev.admin
    before = stack.escrow.call("config")
    context, page = _open_console(stack, browser, admin)
    card = page.get_by_test_id("op-settings-card")
    # The form shows what the chain holds.
    expect(card.get_by_test_id("op-settings-feeRecipient")).to_have_value(before[0])
    expect(card.get_by_test_id("op-settings-feeBps")).to_have_value(f"{before[1] / 100:g}")
    expect(card.get_by_test_id("op-settings-feeBps-bps")).to_have_text(f"{before[1]} basis points")
    expect(card.get_by_test_id("op-settings-arbitrationWindow")).to_have_value("7")
    expect(card.get_by_test_id("op-settings-arbitrationWindow-unit")).to_have_value("86400")
    expect(card.get_by_test_id("op-settings-minDeliveryWindow")).to_have_value("1")
    expect(card.get_by_test_id("op-settings-minDeliveryWindow-unit")).to_have_value("60")
    message = card.get_by_test_id("op-settings-message")
    nonce = stack.chain.w3.eth.get_transaction_count(admin.address)

    # Out of bounds: refused in the page, the bound named, nothing sent.
    card.get_by_test_id("op-settings-feeBps").fill("60")
    card.get_by_test_id("op-settings-save").click()
    expect(message).to_contain_text("The platform fee may be at most 50%; it is 60%.")
    expect(message).to_contain_text("Nothing was sent.")
    expect(card.get_by_test_id("op-settings-feeBps")).to_have_attribute("aria-invalid", "true")
    card.get_by_test_id("op-settings-feeBps").fill("2.5")
    card.get_by_test_id("op-settings-arbitrationWindow").fill("91")
    card.get_by_test_id("op-settings-save").click()
    expect(message).to_contain_text("Arbitration window may be at most 90 d.")
    card.get_by_test_id("op-settings-arbitrationWindow").fill("3")
    card.get_by_test_id("op-settings-maxDisputeWindow").fill("30")
    card.get_by_test_id("op-settings-maxDisputeWindow-unit").select_option("60")
    card.get_by_test_id("op-settings-save").click()
    expect(message).to_contain_text(
        "Longest dispute window must be at least 1 h (as set in “Shortest dispute window”)."
    )
    assert stack.chain.w3.eth.get_transaction_count(admin.address) == nonce
    assert stack.escrow.call("config") == before

    # Within bounds: sent, mined, on-chain.
    page.get_by_test_id("op-settings-reset").click()
    expect(card.get_by_test_id("op-settings-feeBps")).to_have_value(f"{before[1] / 100:g}")
    expect(card.get_by_test_id("op-settings-maxDisputeWindow")).to_have_value("90")
    card.get_by_test_id("op-settings-feeBps").fill("2.5")
    card.get_by_test_id("op-settings-arbitrationWindow").fill("3")
    card.get_by_test_id("op-settings-minDisputeWindow").fill("2")
    card.get_by_test_id("op-settings-minDisputeWindow-unit").select_option("3600")
    expect(card.get_by_test_id("op-settings-minDisputeWindow-duration")).to_have_text("2 h")
    card.get_by_test_id("op-settings-save").click()
    expect(message).to_contain_text(
        "The new fees and windows are on-chain: platform fee 2.5%, arbitration window 3 d."
    )
    expect(message.locator("a.txlink")).to_be_visible()
    after = stack.escrow.call("config")
    assert after == (
        before[0],
        250,
        before[2],
        3 * 86400,
        before[4],
        before[5],
        2 * 3600,
        before[7],
    )
    newest = page.get_by_test_id("audit-row").first
    expect(newest).to_have_attribute("data-event", "ConfigUpdated")
    expect(newest).to_contain_text("Changed the fees and time windows")
    # Saving again with nothing changed sends nothing.
    nonce = stack.chain.w3.eth.get_transaction_count(admin.address)
    card.get_by_test_id("op-settings-save").click()
    expect(message).to_contain_text("Nothing changed; nothing was sent.")
    assert stack.chain.w3.eth.get_transaction_count(admin.address) == nonce
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_payment_tokens_are_allowed_and_stopped(stack: WebStack, browser: Browser) -> None:
    from contracts.client import deploy_contract

    admin = stack.dev.admin
    stack.escrow.tx.reset_nonce(admin.address)  # the admin's browser sent transactions too
    token, _ = deploy_contract(stack.chain, admin, "TestToken", "Tether USD", "USDT")
    context, page = _open_console(stack, browser, admin)
    card = page.get_by_test_id("op-tokens-card")
    message = card.get_by_test_id("op-token-message")
    # The development world's USDT is accepted from the start; the new token is not.
    dev_usdt = stack.dev.usdt
    assert dev_usdt is not None
    expect(card.locator(f'[data-test="op-token-row"][data-token="{dev_usdt}"]')).to_have_count(1)
    expect(card.locator(f'[data-test="op-token-row"][data-token="{token}"]')).to_have_count(0)
    nonce = stack.chain.w3.eth.get_transaction_count(admin.address)

    # Not an address, and an address with no contract: refused before anything is sent.
    card.get_by_test_id("op-token-address").fill("USDT")
    card.get_by_test_id("op-token-allow").click()
    expect(message).to_contain_text("Enter the token contract's address")
    nobody = stack.new_account(ether=0).address
    card.get_by_test_id("op-token-address").fill(nobody)
    card.get_by_test_id("op-token-allow").click()
    expect(message).to_contain_text(f"{nobody} holds no contract on this chain")
    assert stack.chain.w3.eth.get_transaction_count(admin.address) == nonce

    card.get_by_test_id("op-token-address").fill(token.lower())
    card.get_by_test_id("op-token-allow").click()
    expect(message).to_contain_text(f"USDT ({token}) is accepted for payments now.")
    row = card.locator(f'[data-test="op-token-row"][data-token="{token}"]')
    expect(row.get_by_test_id("op-token-symbol")).to_have_text("USDT")
    expect(row.get_by_test_id("op-token-decimals")).to_have_text("6")
    # The fee income card lists it too.
    fees_row = page.locator(f'[data-test="op-fees-row"][data-token="{token}"]')
    expect(fees_row.get_by_test_id("op-fees-amount")).to_have_text("0 USDT")
    expect(fees_row.get_by_test_id("op-fees-withdraw")).to_be_disabled()
    audit = page.locator('[data-test="audit-row"][data-event="TokenAllowed"]')
    expect(audit.first).to_contain_text("Allowed payments in")

    card.get_by_test_id("op-token-disallow").click()
    expect(message).to_contain_text(f"USDT ({token}) is no longer accepted")
    expect(row).to_have_count(0)
    expect(audit.first).to_contain_text("Stopped payments in")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_fee_income_is_withdrawn_to_a_chosen_address(stack: WebStack, browser: Browser) -> None:
    admin = stack.dev.admin
    stack.stock_listing(2)
    buyer = stack.new_account(ether=5)
    order_id = stack.buy_over_api(buyer, stack.dev.listing_id, 2)
    stack.confirm_over_api(buyer, order_id)
    fee = int(stack.escrow.call("feesOf", ZERO))
    assert fee > 0
    context, page = _open_console(stack, browser, admin)
    card = page.get_by_test_id("op-fees-card")
    row = card.locator(f'[data-test="op-fees-row"][data-token="{ZERO}"]')
    expect(row.get_by_test_id("op-fees-amount")).to_have_text(eth_text(fee))
    expect(row).to_contain_text("ETH (the chain's coin)")
    expect(card.get_by_test_id("op-fees-to")).to_have_value(admin.address)

    to = stack.new_account(ether=0).address
    card.get_by_test_id("op-fees-to").fill(to)
    row.get_by_test_id("op-fees-withdraw").click()
    message = card.get_by_test_id("op-fees-message")
    expect(message).to_contain_text(f"Withdrew {eth_text(fee)} of platform fees to {to}.")
    assert stack.chain.w3.eth.get_balance(to) == fee
    assert stack.escrow.call("feesOf", ZERO) == 0
    expect(row.get_by_test_id("op-fees-amount")).to_have_text("0 ETH")
    expect(row.get_by_test_id("op-fees-withdraw")).to_be_disabled()
    newest = page.get_by_test_id("audit-row").first
    expect(newest).to_have_attribute("data-event", "FeesWithdrawn")
    expect(newest).to_contain_text(f"Withdrew {eth_text(fee)} of platform fees to")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_refused_document_is_reported_with_the_licence_granted(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    admin = stack.dev.admin
    supplier = stack.new_account(ether=0).address
    document = b"%PDF-1.4 a scan far too large for the server\n"
    path = tmp_path / "scan.pdf"
    path.write_bytes(document)
    context, page = _open_console(stack, browser, admin)
    digest = "0x" + keccak(document).hex()
    page.route(
        f"**/attestations/{digest}?*",
        lambda route: route.fulfill(
            status=413,
            json={"detail": "the document is over the limit", "code": "attestation_too_large"},
        ),
    )
    page.get_by_test_id("op-licence-supplier").fill(supplier)
    page.get_by_test_id("op-licence-product").fill("web-licence-big")
    page.get_by_test_id("op-licence-file").set_input_files(str(path))
    expect(page.get_by_test_id("op-licence-hash-value")).to_have_text(digest)
    page.get_by_test_id("op-licence-grant").click()
    message = page.get_by_test_id("op-licence-message")
    expect(message).to_contain_text("is licensed for web-licence-big")
    published = page.get_by_test_id("op-licence-published")
    expect(published).to_have_attribute("data-published", "false")
    expect(published).to_contain_text(
        "The licence is on-chain, but the document was not published: it is over the server's "
        "size limit for attestation documents"
    )
    expect(message.locator(".msg")).to_have_class("msg warn")
    sku = keccak(text="web-licence-big")
    assert stack.escrow.call("authorization", supplier, sku) == keccak(document)
    assert httpx.get(f"{stack.url}/attestations/{digest}/info").status_code == 404
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
