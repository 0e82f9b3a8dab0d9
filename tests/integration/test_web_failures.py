"""Failure states in a real browser (issue 18): each says what happened and offers a way
forward, and the page recovers by itself when the server answers again.

1. A 500 from the catalog shows a translated sentence (not the server's bare text) with a Retry
   button that renders the store once the server behaves.
2. The API stops answering mid-session: a banner says so and the page probes /health with
   backoff; when the server answers again the banner goes and the page renders the current route
   by itself, without a reload.
3. The same at start-up (GET /chain refused): the page waits, and the banner's Retry starts it.
4. app.js never loads: after about 10 s index.html's own note (CSS only, no inline script) says
   the page did not start and offers a reload link.
5. A page's own later requests answered 500 (the operator console's pause card reading the
   chain through the server's RPC, the supplier dashboard's refresh, an order's status): the
   page says so inline in the reader's language (English, Chinese), never with the server's or
   the chain client's bare text, offers Retry, and the message goes when the server answers
   again (after Retry, or by itself).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from axe_support import assert_accessible
from playwright.sync_api import expect
from web_support import (
    WebStack,
    connect_dev_wallet,
    new_page,
    open_operator_console,
    pause_page_clock,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

#: What the server serves that is not the API: the front-end's own files.
STATIC = {"/", "/index.html", "/app.js", "/styles.css"}
OFFLINE = "Cannot reach the kameng server. Retrying…"


def is_api(url: str) -> bool:
    """Whether a request goes to the API (or the chain behind it) rather than a static file
    (the bundle and its lazily loaded chunks)."""
    path = urlsplit(url).path
    return path not in STATIC and not path.startswith("/chunks/")


class Refuser:
    """A route handler refusing every API request as a server that is down would
    (connection refused), noting the paths asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, route: Route) -> None:
        self.paths.append(urlsplit(route.request.url).path)
        route.abort("connectionrefused")


def loads(page: Page) -> list[int]:
    """A list that grows by one on every full page load (a reload included)."""
    count: list[int] = []
    page.on("load", lambda _page: count.append(1))
    return count


def settled(page: Page) -> None:
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")


def test_a_500_from_the_catalog_says_so_and_retry_renders_the_store(
    stack: WebStack, browser: Browser
) -> None:
    context, page = new_page(browser)

    def boom(route: Route) -> None:
        route.fulfill(
            status=500, content_type="application/json", body=json.dumps({"detail": "Boom"})
        )

    page.route("**/catalog/listings*", boom)
    page.goto(stack.url + "/#/")
    failed = page.get_by_test_id("page-failed")
    expect(failed).to_contain_text("The server had a problem loading this page.")
    expect(failed).to_contain_text("500")
    expect(failed).not_to_contain_text("Boom")
    expect(page.get_by_test_id("boot-stuck")).to_have_count(0)

    page.unroute("**/catalog/listings*", boom)
    page.get_by_test_id("page-retry").click()
    expect(page.get_by_test_id("products")).to_be_visible()
    expect(page.get_by_test_id("product").first).to_be_visible()
    expect(failed).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_the_page_recovers_by_itself_when_the_server_answers_again(
    stack: WebStack, browser: Browser
) -> None:
    context, page = new_page(browser)
    page.goto(stack.url + "/#/")
    product = page.get_by_test_id("product").first
    expect(product).to_be_visible()
    settled(page)
    sku = product.get_attribute("data-sku")
    assert sku
    page.evaluate("window.__marker = 'no reload'")
    loaded = loads(page)

    down = Refuser()
    page.route(is_api, down)
    page.evaluate("sku => { window.location.hash = '#/product/' + sku; }", sku)
    banner = page.get_by_test_id("offline-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(OFFLINE)
    expect(page.get_by_test_id("offline-retry")).to_be_visible()
    expect(page.get_by_test_id("page-failed")).to_be_visible()
    # The page probes the server on its own while it is down.
    with page.expect_request(lambda r: urlsplit(r.url).path == "/health"):
        pass

    page.unroute(is_api, down)
    expect(banner).to_be_hidden(timeout=15_000)
    expect(page.get_by_test_id("product-name")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("page-failed")).to_have_count(0)
    settled(page)
    assert page.evaluate("window.__marker") == "no reload"
    assert loaded == []
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_page_that_cannot_start_waits_for_the_server_and_retry_starts_it(
    stack: WebStack, browser: Browser
) -> None:
    context, page = new_page(browser)
    # The page's own clock, so that the backoff's next probe of /health can be held back while
    # Retry is pressed (otherwise that probe may bring the page back first, and Retry is gone).
    page.clock.install()
    down = Refuser()
    page.route(is_api, down)
    page.goto(stack.url + "/#/")
    banner = page.get_by_test_id("offline-banner")
    expect(banner).to_contain_text(OFFLINE)
    expect(page.get_by_test_id("page-failed")).to_be_visible()
    with page.expect_request(lambda r: urlsplit(r.url).path == "/health"):
        pass
    assert_accessible(page, "page that cannot reach the server", dark=True)
    page.evaluate("window.__marker = 'no reload'")
    loaded = loads(page)

    # Stop the page's timers (the jump fires the probe that was due, if any), and wait until no
    # probe is out: the banner is busy while one is.
    pause_page_clock(page)
    expect(banner).not_to_have_attribute("aria-busy", "true")
    page.unroute(is_api, down)
    page.get_by_test_id("offline-retry").click()
    # With the clock still stopped, only Retry's probe can have brought the page back.
    expect(page.get_by_test_id("products")).to_be_visible(timeout=15_000)
    page.clock.resume()
    expect(banner).to_be_hidden()
    expect(page.get_by_test_id("page-failed")).to_have_count(0)
    assert down.paths[0] == "/chain"
    assert page.evaluate("window.__marker") == "no reload"
    assert loaded == []
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def boom(route: Route) -> None:
    """Answer a request as a server that failed (500, its bare text in the detail)."""
    route.fulfill(status=500, content_type="application/json", body=json.dumps({"detail": "Boom"}))


#: The selector of the escrow's paused(), which only the operator console's pause card reads.
PAUSED = "0x5c975abb"


def test_a_pages_own_requests_failing_are_said_inline_with_retry(
    stack: WebStack, browser: Browser
) -> None:
    """One signed-in operator meets three: the pause card's read of the chain, the supplier
    dashboard's refresh (English, Retry), an order's status (Chinese, recovers by itself)."""
    rpc = urlsplit(httpx.get(stack.url + "/chain").json()["rpc_url"]).path

    def is_rpc(url: str) -> bool:
        return urlsplit(url).path == rpc

    def fail_paused(route: Route) -> None:
        if PAUSED in (route.request.post_data or ""):
            boom(route)
        else:
            route.continue_()

    # The pause card reads the chain (through the server's RPC) on its own: a 500 there is said
    # in the card in the reader's words, not the chain client's, and Retry reads it again.
    context, page = open_operator_console(stack, browser, stack.dev.admin)
    page.clock.install()  # flows as usual until the dashboard's part stops it
    state = page.get_by_test_id("op-paused")
    expect(state).to_have_attribute("data-paused", "false")
    settled(page)
    page.route(is_rpc, fail_paused)
    page.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")  # render it again
    inline = page.get_by_test_id("op-pause-message")
    expect(inline).to_contain_text("Lost the connection to the chain.")
    expect(inline).not_to_contain_text("HTTP request failed")
    expect(inline).not_to_contain_text("Boom")
    page.unroute(is_rpc, fail_paused)
    inline.get_by_test_id("error-retry").click()
    expect(inline).to_be_empty()
    expect(state).to_have_attribute("data-paused", "false")

    # The supplier dashboard stays; its failed refresh is said above it, with Retry. Its own
    # refresh every 2.5 s must not answer first (and take Retry away): the page's clock stops
    # once the failure shows, and the test waits until no refresh is out (the message is
    # aria-busy while one is) before the server comes back and Retry is pressed.
    page.goto(stack.url + "/#/supplier")
    expect(page.locator("h1")).to_have_text("Supplier dashboard")
    settled(page)
    inline = page.get_by_test_id("dashboard-message")
    page.route("**/supplier/dashboard", boom)
    expect(inline).to_contain_text("The server had a problem; nothing was changed.")
    expect(inline).not_to_contain_text("Boom")
    pause_page_clock(page)
    expect(inline).not_to_have_attribute("aria-busy", "true")
    page.unroute("**/supplier/dashboard", boom)
    with page.expect_response("**/supplier/dashboard") as answer:
        inline.get_by_test_id("error-retry").click()
    assert answer.value.status == 200
    expect(inline).to_be_empty()
    page.clock.resume()

    # An order's status (an order nobody bought: once the server answers, the page waits for it
    # to appear), read in Chinese: the page recovers by itself.
    order = "**/buyer/orders/999999"
    page.route(order, boom)
    page.goto(stack.url + "/#/order/999999")
    inline = page.get_by_test_id("order-message")
    expect(inline).to_contain_text("Error 500.")
    page.get_by_test_id("lang-zh-CN").click()
    expect(inline).to_contain_text("服务器出了问题，没有做任何更改。")
    expect(inline).to_contain_text("错误代码 500")
    expect(inline.get_by_test_id("error-retry")).to_have_text("重试")
    expect(inline).not_to_contain_text("Boom")
    page.unroute(order, boom)
    expect(inline).to_be_empty()
    expect(page.get_by_test_id("order-status")).to_contain_text("等待索引服务列出订单")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_page_whose_script_never_loads_says_so_after_ten_seconds(
    stack: WebStack, browser: Browser
) -> None:
    context, page = new_page(browser)
    page.route("**/app.js", lambda route: route.abort())
    page.goto(stack.url + "/")
    stuck = page.get_by_test_id("boot-stuck")
    expect(page.locator("#app")).to_contain_text("Loading…")
    expect(stuck).to_be_hidden()
    expect(stuck).to_be_visible(timeout=15_000)
    expect(stuck).to_contain_text("The page did not start. Check your connection and reload.")
    expect(stuck.get_by_role("link", name="Reload")).to_have_attribute("href", "")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_sign_in_outlives_a_render_of_its_page(stack: WebStack, browser: Browser) -> None:
    """The page is rendered again while the wallet's sign-in is on its way (a recovered
    connection, an account change, a hash change): the sign-in still ends on the signed-in page.
    Before, the sign-in's own re-render was for the superseded render and did nothing, so the
    page stayed at "Sign in" although the session was stored (a failure of fresh clone h1)."""
    context, page = new_page(browser)
    page.goto(stack.url + "/#/")
    connect_dev_wallet(page, stack.dev.supplier)
    page.goto(stack.url + "/#/supplier")
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/auth/verify", hold)
    with page.expect_request("**/auth/verify"):
        sign_in(page)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # the handler runs as events are pumped
        page.wait_for_timeout(10)
    assert held, "the sign-in request was not intercepted"
    # Render the page again while the sign-in waits for its answer.
    page.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")
    settled(page)
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    held[0].continue_()
    expect(page.get_by_test_id("listings")).to_be_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()
