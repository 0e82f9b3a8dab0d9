"""The operator's console in Chromium (issue 14), signed in as the development world's admin
(who holds every role): the overview shows the numbers GET /admin/overview returns; pausing and
unpausing from the page reach the chain and the audit log; a licence granted from the page is
on-chain with the keccak256 of the attestation document chosen there, and the document itself is
published once the grant is mined; a missing role is named before anything is sent; and a
wallet without an operator role sees the explanation, not the console, and no "Operator" entry in
the nav."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from eth_utils import keccak
from playwright.sync_api import expect
from web_support import WebStack, eth_text, open_operator_console, screenshot

if TYPE_CHECKING:
    from pathlib import Path

    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page

ZERO = "0x" + "00" * 20


def _token(page: Page, address: str) -> str:
    key = f"kameng.session.{address.lower()}"
    token: str = page.evaluate(f"JSON.parse(localStorage.getItem('{key}')).token")
    return token


def _overview(stack: WebStack, token: str) -> dict[str, Any]:
    answer = httpx.get(stack.url + "/admin/overview", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_the_overview_shows_what_the_api_returns(stack: WebStack, browser: Browser) -> None:
    stack.stock_listing(3)
    buyer = stack.new_account(ether=5)
    order_id = stack.buy_over_api(buyer, stack.dev.listing_id, 2)
    stack.confirm_over_api(buyer, order_id)
    context, page = open_operator_console(stack, browser, stack.dev.admin)
    expect(page.locator('[data-nav="operator"]')).to_be_visible()
    expect(page.get_by_test_id("op-overview")).to_be_visible()
    expect(page.get_by_test_id("op-roles")).to_contain_text("admin, rights admin, pauser")
    token = _token(page, stack.dev.admin.address)
    overview = stack.wait_until(
        "the order completed in the mirror",
        lambda: (o := _overview(stack, token))["orders_by_state"].get("completed") and o,
    )

    (volume,) = [v for v in overview["volume"] if v["token"] == ZERO]
    row = page.locator(f'[data-test="op-volume-row"][data-token="{ZERO}"]')
    expect(row.get_by_test_id("op-volume-orders")).to_have_text(f"{volume['orders']:,}")
    expect(row.get_by_test_id("op-volume-amount")).to_have_text(eth_text(int(volume["amount"])))
    states = page.get_by_test_id("op-orders-by-state")
    for state, n in overview["orders_by_state"].items():
        expect(states.locator(f'[data-state="{state}"]')).to_have_text(
            f"{state.capitalize()}: {n:,}"
        )
    for test_id, key in [
        ("op-open-disputes", "open_disputes"),
        ("op-disputes-late", "disputes_past_deadline"),
        ("op-undelivered", "undelivered_orders"),
        ("op-dead", "dead_notifications"),
        ("op-stuck", "stuck_transactions"),
    ]:
        expect(page.get_by_test_id(test_id).locator(".value")).to_have_text(f"{overview[key]:,}")
    expect(page.get_by_test_id("op-low-bonds").locator(".value")).to_have_text(
        str(len(overview["low_bonds"]))
    )
    if overview["open_disputes"] == 0 and overview["undelivered_orders"] == 0:
        expect(page.get_by_test_id("op-advice-disputes")).to_have_count(0)

    # A dispute shows, with what to do about it.
    second = stack.buy_over_api(buyer, stack.dev.listing_id, 1)
    _dispute(stack, buyer, second)
    advice = page.get_by_test_id("op-advice-disputes")
    expect(advice).to_contain_text("1 dispute is open")
    expect(advice.get_by_role("link")).to_have_attribute("href", "#/arbiter")
    expect(page.get_by_test_id("op-open-disputes").locator(".value")).to_have_text("1")
    screenshot(page, "operator-console")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def _dispute(stack: WebStack, buyer: LocalAccount, order_id: int) -> None:
    from backend.client import KamengClient
    from contracts.encoding import Order

    with KamengClient(stack.url) as client:

        def delivered() -> Any:
            detail = client.order(order_id, buyer)
            return detail if int(detail.state) == 2 else None

        detail = stack.wait_until(f"order {order_id} delivered", delivered)
    order = Order.from_record(detail)
    stack.escrow.dispute(buyer, order_id, order, "ipfs://claim", keccak(text="claim"))


def test_pause_unpause_arbiters_and_licences_from_the_page(
    stack: WebStack, browser: Browser, tmp_path: Path
) -> None:
    admin = stack.dev.admin
    context, page = open_operator_console(stack, browser, admin)
    expect(page.get_by_test_id("op-paused")).to_have_attribute("data-paused", "false")

    # Pause, then unpause: both on-chain and in the audit log, with who sent them.
    page.get_by_test_id("op-pause").click()
    expect(page.get_by_test_id("op-pause-message")).to_contain_text("The marketplace is paused.")
    assert stack.escrow.call("paused") is True
    expect(page.get_by_test_id("op-paused")).to_have_attribute("data-paused", "true")
    page.get_by_test_id("op-unpause").click()
    expect(page.get_by_test_id("op-pause-message")).to_contain_text("runs again")
    assert stack.escrow.call("paused") is False
    rows = page.get_by_test_id("audit-row")
    paused = page.locator('[data-test="audit-row"][data-event="Paused"]')
    unpaused = page.locator('[data-test="audit-row"][data-event="Unpaused"]')
    expect(paused).to_have_count(1)
    expect(unpaused).to_have_count(1)
    expect(unpaused).to_contain_text("Resumed the marketplace")
    expect(paused).to_contain_text("Paused the marketplace")
    short = f"{admin.address[:6]}…{admin.address[-4:]}"
    expect(unpaused).to_contain_text(short)
    expect(unpaused.locator("a.txlink")).to_be_visible()
    assert int(unpaused.get_attribute("data-block") or 0) > int(
        paused.get_attribute("data-block") or 0
    )
    # Newest first: the unpause is above the pause.
    events = [rows.nth(i).get_attribute("data-event") for i in range(rows.count())]
    assert events.index("Unpaused") < events.index("Paused")

    # An arbiter: a bad address is refused before anything is sent, a good one appointed.
    page.get_by_test_id("op-arbiter-address").fill("0x1234")
    page.get_by_test_id("op-arbiter-grant").click()
    expect(page.get_by_test_id("op-arbiter-message")).to_contain_text("Enter the arbiter's address")
    arbiter = stack.new_account(ether=1)
    page.get_by_test_id("op-arbiter-address").fill(arbiter.address.lower())
    page.get_by_test_id("op-arbiter-grant").click()
    expect(page.get_by_test_id("op-arbiter-message")).to_contain_text("is an arbiter now")
    assert stack.escrow.has_role("ARBITER_ROLE", arbiter.address)
    page.get_by_test_id("op-arbiter-revoke").click()
    expect(page.get_by_test_id("op-arbiter-message")).to_contain_text("is no longer an arbiter")
    assert not stack.escrow.has_role("ARBITER_ROLE", arbiter.address)

    # A licence: the document's keccak256 is computed in the browser and lands on-chain.
    supplier = stack.new_account(ether=1)
    document = b"%PDF-1.4 rights holder's authorization for web-licence-42\n" * 20
    path = tmp_path / "attestation.pdf"
    path.write_bytes(document)
    page.get_by_test_id("op-licence-supplier").fill(supplier.address)
    page.get_by_test_id("op-licence-product").fill("web-licence-42")
    page.get_by_test_id("op-licence-grant").click()
    expect(page.get_by_test_id("op-licence-message")).to_contain_text(
        "Choose the attestation document first"
    )
    page.get_by_test_id("op-licence-file").set_input_files(str(path))
    digest = "0x" + keccak(document).hex()
    expect(page.get_by_test_id("op-licence-hash-value")).to_have_text(digest)
    # Nothing is uploaded before the grant is mined: no licence cites the hash yet.
    assert httpx.get(f"{stack.url}/attestations/{digest}/info").status_code == 404
    page.get_by_test_id("op-licence-grant").click()
    expect(page.get_by_test_id("op-licence-message")).to_contain_text(
        "is licensed for web-licence-42"
    )
    expect(page.get_by_test_id("op-licence-published")).to_have_text(
        "The document is published: buyers see it beside the licence."
    )
    sku = keccak(text="web-licence-42")
    assert stack.escrow.call("authorization", supplier.address, sku) == keccak(document)
    kept = httpx.get(f"{stack.url}/attestations/{digest}")
    assert kept.status_code == 200 and kept.content == document
    info = httpx.get(f"{stack.url}/attestations/{digest}/info").json()
    assert (info["name"], info["media_type"], info["size"]) == (
        "attestation.pdf",
        "application/pdf",
        len(document),
    )
    assert info["supplier"] == supplier.address and info["sku"] == "0x" + sku.hex()
    licence = page.locator('[data-test="audit-row"][data-event="SkuAuthorized"]').filter(
        has_text=f"{supplier.address[:6]}…{supplier.address[-4:]}"
    )
    expect(licence).to_have_count(1)
    expect(licence).to_contain_text("Licensed")
    page.get_by_test_id("op-licence-revoke").click()
    expect(page.get_by_test_id("op-licence-message")).to_contain_text("is revoked")
    assert stack.escrow.call("authorization", supplier.address, sku) == b"\x00" * 32
    expect(licence).to_have_count(2)
    expect(licence.first).to_contain_text("Revoked")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_missing_role_is_named_before_anything_is_sent(stack: WebStack, browser: Browser) -> None:
    pauser = stack.new_account(ether=1)
    stack.escrow.tx.reset_nonce(stack.dev.admin.address)  # the admin's browser sent some too
    stack.escrow.grant_role(stack.dev.admin, "PAUSER_ROLE", pauser.address)
    context, page = open_operator_console(stack, browser, pauser)
    expect(page.get_by_test_id("op-roles")).to_contain_text("pauser")
    nonce = stack.chain.w3.eth.get_transaction_count(pauser.address)
    page.get_by_test_id("op-arbiter-address").fill(stack.new_account(ether=0).address)
    page.get_by_test_id("op-arbiter-grant").click()
    expect(page.get_by_test_id("op-arbiter-message")).to_contain_text(
        "lacks the admin role, which is needed to appoint arbiters. Nothing was sent"
    )
    assert stack.chain.w3.eth.get_transaction_count(pauser.address) == nonce
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_wallet_without_a_role_sees_why_not_the_console(
    stack: WebStack, browser: Browser
) -> None:
    someone = stack.new_account(ether=1)
    context, page = open_operator_console(stack, browser, someone)
    refusal = page.get_by_test_id("not-operator")
    expect(refusal).to_contain_text(f"{someone.address} holds no operator role on this escrow.")
    expect(refusal).to_contain_text("DEFAULT_ADMIN_ROLE, RIGHTS_ADMIN_ROLE, PAUSER_ROLE")
    expect(page.get_by_test_id("op-overview")).to_have_count(0)
    expect(page.get_by_test_id("op-pause")).to_have_count(0)
    expect(page.locator('[data-nav="operator"]')).to_be_hidden()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_the_audit_log_pages_back_without_gaps(stack: WebStack, browser: Browser) -> None:
    admin = stack.dev.admin
    stack.escrow.tx.reset_nonce(admin.address)  # the admin's browser sent transactions too
    for i in range(30):
        stack.escrow.authorize(
            admin, stack.new_account(ether=0).address, keccak(text=f"p{i}"), keccak(text=f"a{i}")
        )
    context, page = open_operator_console(stack, browser, admin)
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    token = _token(page, admin.address)
    last_sku = "0x" + keccak(text="p29").hex()

    def mirrored() -> list[dict[str, Any]] | None:
        entries: list[dict[str, Any]] = httpx.get(
            stack.url + "/admin/audit?limit=200", headers={"Authorization": f"Bearer {token}"}
        ).json()
        return entries if entries[0]["args"].get("sku") == last_sku else None

    everything = stack.wait_until("the last licence in the mirror", mirrored)
    expect(page.get_by_test_id("audit-row").first).to_have_attribute(
        "data-block", str(everything[0]["block_number"])
    )
    seen: list[str] = []
    while True:
        rows = page.get_by_test_id("audit-row")
        expect(rows.first).to_be_visible()
        seen += [
            f"{rows.nth(i).get_attribute('data-block')}:{rows.nth(i).get_attribute('data-event')}"
            for i in range(rows.count())
        ]
        older = page.get_by_test_id("audit-older")
        if older.is_disabled():
            break
        first = rows.first.get_attribute("data-block")
        older.click()
        expect(page.get_by_test_id("audit-row").first).not_to_have_attribute(
            "data-block", first or ""
        )
    assert seen == [f"{e['block_number']}:{e['name']}" for e in everything]
    assert len(seen) > 25  # more than one page
    page.get_by_test_id("audit-newer").click()
    expect(page.get_by_test_id("audit-row").first).to_have_attribute(
        "data-block", str(everything[0]["block_number"])
    )
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
