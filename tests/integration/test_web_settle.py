"""Settling due orders from the supplier dashboard in a real browser (issue 13).

The buyer's order page says when a delivered order settles by itself, then that it is due; the
supplier's dashboard shows what is settled, due now and still in the dispute window, keeps its
"Settle due orders now" button disabled (saying why) while nothing is due, and once the window
has passed settles every due order from the supplier's wallet in batches of the server's keeper
batch size (GET /chain), paying exactly what the dashboard said was due.

This module's server runs without its keeper, which would otherwise settle the due orders first,
and with a batch size of 2, so that three orders take two transactions (at the default of 50 the
same path took 51 purchases and a 50-order settle, about two minutes on a loaded CI machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect
from web_support import (
    WebStack,
    connect_dev_wallet,
    new_page,
    screenshot,
    sign_in,
    start_stack,
)

from backend.client import KamengClient
from contracts import order_rules as rules
from contracts.encoding import Order, OrderState

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Orders per settle transaction in this module's server.
BATCH = 2

#: One more than a settle batch, so that the button sends two transactions.
ORDERS = BATCH + 1


@pytest.fixture(scope="module")
def stack() -> Iterator[WebStack]:
    """kameng with the web front-end on the embedded chain, without the keeper."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KAMENG_KEEPER", "false")
        env.setenv("KAMENG_KEEPER_BATCH_SIZE", str(BATCH))
        s = start_stack()
    try:
        assert s.runtime.keeper is None
        yield s
    finally:
        s.stop()


def _local_time(page: Page, ts: int) -> str:
    """`ts` as the page's `when` shows it (the browser's Intl date and time)."""
    text: str = page.evaluate(
        "ts => new Date(ts * 1000).toLocaleString(undefined, "
        "{ dateStyle: 'medium', timeStyle: 'short' })",
        ts,
    )
    return text


def test_supplier_settles_due_orders_from_the_dashboard(stack: WebStack, browser: Browser) -> None:
    supplier = stack.dev.supplier
    stack.stock_listing(ORDERS)
    buyer = stack.new_account(ether=5)
    oids = [stack.buy_over_api(buyer, stack.dev.listing_id, 1) for _ in range(ORDERS)]
    with KamengClient(stack.url) as client:
        assert client.chain_info().settle_batch == BATCH
        client.sign_in(buyer)
        orders = stack.wait_until(
            f"{ORDERS} orders delivered in the mirror",
            lambda: (
                rows
                if len(rows := client.my_orders(states=[int(OrderState.DELIVERED)], account=None))
                == ORDERS
                else None
            ),
            timeout=120,
        )
    owed = sum(rules.complete(rules.Terms.of(Order.from_record(o))).to_supplier for o in orders)
    first = min(orders, key=lambda o: int(o.deadline))
    assert {int(o.order_id) for o in orders} == set(oids)
    assert first.settles_at == first.deadline and first.settle_due is False

    # The buyer is told when the order settles by itself.
    b_context, buyer_page = new_page(browser)
    buyer_page.goto(f"{stack.url}/#/order/{first.order_id}")
    connect_dev_wallet(buyer_page, buyer)
    sign_in(buyer_page)
    note = buyer_page.get_by_test_id("settles-note")
    expect(note).to_have_text(
        f"Settles automatically on {_local_time(buyer_page, first.deadline)} "
        "unless you dispute before then."
    )

    # Nothing is due yet: the button is disabled and says when the first order will be.
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(page, supplier)
    sign_in(page)
    button = page.get_by_test_id("settle-due")
    expect(page.get_by_test_id("in-window")).to_contain_text(f"{ORDERS} orders")
    expect(page.get_by_test_id("in-window")).to_contain_text("0.0294 ETH")  # 3 × 0.01, less 2%
    expect(page.get_by_test_id("due-now")).to_contain_text("0 ETH")
    expect(button).to_be_disabled()
    expect(page.get_by_test_id("settle-due-why")).to_contain_text(
        f"Nothing is due yet: {ORDERS} orders are in the dispute window; the next becomes due "
        f"after {_local_time(page, first.deadline)}."
    )

    # The dispute window passes: the orders are due, for the buyer and on the dashboard.
    stack.travel(86_400 + 60)
    expect(note).to_contain_text("Due to settle now")
    expect(page.get_by_test_id("due-now")).to_contain_text(f"{ORDERS} orders")
    expect(page.get_by_test_id("due-now")).to_contain_text("0.0294 ETH")
    expect(page.get_by_test_id("in-window")).to_contain_text("none")
    expect(page.get_by_test_id("settle-due-why")).to_contain_text("in 2 transactions")
    expect(button).to_be_enabled()
    screenshot(page, "supplier-settle-due")
    screenshot(buyer_page, "buyer-order-due")

    # One press settles them all, in two batches, and pays what was due.
    before = stack.escrow.balance_of(supplier.address)
    button.click()
    message = page.get_by_test_id("settle-due-message")
    expect(message).to_contain_text(
        f"Settled {ORDERS} orders in 2 transactions: 0.0294 ETH credited to your withdrawable "
        "balance."
    )
    expect(message.get_by_role("link")).to_have_count(2)
    assert stack.escrow.balance_of(supplier.address) - before == owed
    expect(page.get_by_test_id("orders-by-state")).to_contain_text(f"completed: {ORDERS}")
    expect(page.get_by_test_id("settled")).to_contain_text(f"{ORDERS} orders completed")
    expect(page.get_by_test_id("due-now")).to_contain_text("none")
    expect(button).to_be_disabled()
    expect(page.get_by_test_id("settle-due-why")).to_contain_text("Nothing to settle")
    expect(buyer_page.get_by_test_id("order-state")).to_have_text("Completed")
    screenshot(page, "supplier-settled")
    for oid in oids:
        assert stack.escrow.order_hash(oid) == bytes(32)
    assert page.errors == [] and buyer_page.errors == []  # type: ignore[attr-defined]
    b_context.close()
    context.close()
