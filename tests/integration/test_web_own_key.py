"""A supplier that keeps its key uploads codes from the dashboard in a real browser (issue 14).

The backend holds no key for this supplier: an upload is stored encrypted but not for sale, and
the page has the supplier's own wallet sign and send the exact commitBatch the server handed
over, reports it, and shows the codes on sale. A refused signature leaves nothing on sale and the
upload under "Waiting for your signature", where "Sign now" signs it later; a second upload to
the listing meanwhile is refused, pointing at that list. The development wallet cannot refuse
anything, so the refusal is played by an injected test wallet whose "Reject" is pressed for
transactions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from eth_utils import keccak
from playwright.sync_api import expect
from web_support import (
    InjectedWallet,
    WebStack,
    _RpcError,
    connect_dev_wallet,
    new_page,
    screenshot,
    settle_after_connect,
    sign_in,
    write_csv,
)

from backend.chaintx import encode_call
from backend.client import KamengClient
from backend.vault.service import stock_counts
from contracts.encoding import OrderState

if TYPE_CHECKING:
    from pathlib import Path

    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page


class RefusingWallet(InjectedWallet):
    """The injected test wallet, whose person can also press "Reject" for transactions."""

    def __init__(self, stack: WebStack, account: LocalAccount) -> None:
        super().__init__(stack, account)
        self.reject_transactions = False
        #: Every transaction it was asked to send, as the page asked.
        self.sent: list[dict[str, Any]] = []

    def _handle(self, page: Any, method: str, params: list[Any]) -> Any:
        if method == "eth_sendTransaction":
            if self.reject_transactions:
                raise _RpcError({"code": 4001, "message": "User rejected the request."})
            self.sent.append(dict(params[0]))
        return super()._handle(page, method, params)


def own_key_supplier(stack: WebStack) -> tuple[LocalAccount, int]:
    """A licensed, bonded supplier with a listing, whose key the backend does not hold."""
    escrow, dev = stack.escrow, stack.dev
    account = stack.new_account(ether=100)
    escrow.authorize(dev.admin, account.address, dev.sku, keccak(text="licence: own key"))
    escrow.deposit_bond(account, 10**18)
    # The platform's delivery agent accepts the role by itself (its key is the agent's).
    escrow.set_delivery_key(account, dev.delivery.address)
    listing_id, _ = escrow.create_listing(account, sku=dev.sku, unit_price=10**16)
    assert account.address not in {s.address for s in stack.runtime.suppliers}
    stack.wait_until(
        f"listing {listing_id} in the catalog",
        lambda: httpx.get(f"{stack.url}/catalog/listings/{listing_id}").status_code == 200,
    )
    return account, listing_id


def vault(stack: WebStack, listing_id: int) -> dict[str, int]:
    """The listing's codes in the vault, by state."""
    with stack.runtime.sessions() as session:
        return stock_counts(session, listing_id)


#: What the page says while the wallet has the commitment to sign.
SIGN_PROMPT = (
    "Sign the commitment of {n} codes in your wallet… — your key never leaves your wallet."
)


def watch_messages(page: Page, test_id: str) -> None:
    """Record every text the message slot `test_id` shows from now on (progress included)."""
    page.evaluate(
        """id => {
          window.__seen = [];
          new MutationObserver(() => {
            const el = document.querySelector(`[data-test="${id}"]`);
            const text = el ? el.textContent : "";
            if (text && window.__seen.at(-1) !== text) window.__seen.push(text);
          }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }""",
        test_id,
    )


def seen_messages(page: Page) -> list[str]:
    seen: list[str] = page.evaluate("window.__seen")
    return seen


def upload(page: Page, listing_id: int, csv: Path) -> None:
    page.get_by_test_id("upload-listing").select_option(str(listing_id))
    page.get_by_test_id("upload-file").set_input_files(csv)
    page.get_by_test_id("upload").click()


def test_own_wallet_signs_the_commitment_and_the_codes_go_on_sale(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    supplier, listing_id = own_key_supplier(stack)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, supplier)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{listing_id}"]')
    expect(row.get_by_test_id("listing-stock")).to_have_text("0")

    watch_messages(page, "upload-message")
    upload(page, listing_id, write_csv(tmp_path, "codes.csv", stack.codes(4, prefix="OWN")))
    message = page.get_by_test_id("upload-message")
    expect(message).to_contain_text(
        f"Committed 4 codes to listing #{listing_id} as batch 0 (indexes 0–3). "
        "They are on sale now."
    )
    expect(message.get_by_role("link")).to_be_visible()
    expect(row.get_by_test_id("listing-stock")).to_have_text("4")
    expect(page.get_by_test_id("waiting")).to_be_hidden()
    assert SIGN_PROMPT.format(n=4) in seen_messages(page)
    screenshot(page, "supplier-own-key-committed")
    assert vault(stack, listing_id) == {"stock": 4}

    # The wallet sent exactly the call the server prepared.
    with KamengClient(stack.url) as client:
        client.sign_in(supplier)
        (done,) = client.uploads(listing_id=listing_id)
    assert done.state == "committed" and done.tx_hash is not None
    sent = stack.chain.w3.eth.get_transaction(done.tx_hash)  # type: ignore[arg-type]
    expected = encode_call(
        "commitBatch", [listing_id, bytes.fromhex(done.root[2:]), 4, done.first_index]
    )
    assert sent["from"] == supplier.address and sent["to"] == stack.escrow.address
    assert bytes(sent["input"]) == expected

    # On sale: a buyer buys one and it is delivered from the supplier's own batch.
    buyer = stack.new_account(ether=5)
    oid = stack.buy_over_api(buyer, listing_id, 1)
    with KamengClient(stack.url) as client:
        stack.wait_until(
            f"order {oid} delivered",
            lambda: client.order(oid, buyer).state == OrderState.DELIVERED,
            timeout=60,
        )
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_refused_signature_puts_nothing_on_sale_and_is_signed_later_from_the_list(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    supplier, listing_id = own_key_supplier(stack)
    context, page = new_page(browser)
    wallet = RefusingWallet(stack, supplier)
    wallet.install(context)
    page.goto(f"{stack.url}/#/supplier")
    page.get_by_test_id("connect").click()
    page.get_by_test_id("connect-injected").click()
    settle_after_connect(page, supplier.address)
    sign_in(page)
    row = page.locator(f'[data-test="listing-row"][data-listing="{listing_id}"]')
    expect(row.get_by_test_id("listing-stock")).to_have_text("0")

    # The person presses "Reject": nothing is on sale, the upload waits in the list.
    wallet.reject_transactions = True
    upload(page, listing_id, write_csv(tmp_path, "codes.csv", stack.codes(3, prefix="OWN")))
    message = page.get_by_test_id("upload-message")
    expect(message).to_contain_text(
        "You rejected the request in your wallet. Nothing was signed or sent. Nothing is on "
        "sale: your 3 codes are stored encrypted in upload #"
    )
    expect(message).to_contain_text('wait under "Waiting for your signature" on this page')
    waiting = page.get_by_test_id("waiting-upload")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text(f"#{listing_id}")
    expect(waiting).to_contain_text("3 (indexes 0–2)")
    expect(waiting.get_by_test_id("sign-upload")).to_have_text("Sign now")
    expect(waiting.get_by_test_id("sign-upload")).to_be_enabled()
    assert "eth_sendTransaction" in wallet.requests and wallet.sent == []
    assert vault(stack, listing_id) == {"staged": 3}
    assert stack.escrow.listing(listing_id)["committed"] == 0
    with KamengClient(stack.url) as client:
        client.sign_in(supplier)
        (awaiting,) = client.uploads(listing_id=listing_id)
    assert awaiting.state == "awaiting" and awaiting.commit_call is not None
    screenshot(page, "supplier-own-key-waiting")

    # A second upload to the listing meanwhile is refused and points at the list.
    upload(page, listing_id, write_csv(tmp_path, "more.csv", stack.codes(2, prefix="OWN")))
    expect(message).to_contain_text(
        f"Nothing from more.csv was stored: upload #{awaiting.upload_id} (3 codes) to listing "
        f"#{listing_id} still waits for your wallet to sign its commitment"
    )
    expect(message).to_contain_text(
        'Press "Sign now" for it under "Waiting for your signature" on this page, then upload '
        "more.csv again."
    )
    assert vault(stack, listing_id) == {"staged": 3}

    # Signed later from the list: the exact call the server prepared, and the codes on sale.
    wallet.reject_transactions = False
    watch_messages(page, "waiting-message")
    waiting.get_by_test_id("sign-upload").click()
    done = page.get_by_test_id("waiting-message")
    expect(done).to_contain_text(
        f"Committed 3 codes to listing #{listing_id} as batch 0 (indexes 0–2). "
        "They are on sale now."
    )
    expect(waiting).to_have_count(0)
    expect(row.get_by_test_id("listing-stock")).to_have_text("3")
    assert SIGN_PROMPT.format(n=3) in seen_messages(page)
    (tx,) = wallet.sent
    assert tx["to"].lower() == awaiting.commit_call.to.lower()
    assert tx["data"] == awaiting.commit_call.data
    assert vault(stack, listing_id) == {"stock": 3}

    # Now the listing takes the next upload.
    upload(page, listing_id, tmp_path / "more.csv")
    expect(message).to_contain_text(
        f"Committed 2 codes to listing #{listing_id} as batch 1 (indexes 3–4). "
        "They are on sale now."
    )
    expect(row.get_by_test_id("listing-stock")).to_have_text("5")
    assert len(wallet.sent) == 2
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
