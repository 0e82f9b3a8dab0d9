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
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from playwright.sync_api import expect
from web_support import WebStack, connect_dev_wallet, new_page, sign_in

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
    down = Refuser()
    page.route(is_api, down)
    page.goto(stack.url + "/#/")
    banner = page.get_by_test_id("offline-banner")
    expect(banner).to_contain_text(OFFLINE)
    expect(page.get_by_test_id("page-failed")).to_be_visible()
    with page.expect_request(lambda r: urlsplit(r.url).path == "/health"):
        pass
    page.evaluate("window.__marker = 'no reload'")
    loaded = loads(page)

    page.unroute(is_api, down)
    page.get_by_test_id("offline-retry").click()
    expect(page.get_by_test_id("products")).to_be_visible(timeout=15_000)
    expect(banner).to_be_hidden()
    expect(page.get_by_test_id("page-failed")).to_have_count(0)
    assert down.paths[0] == "/chain"
    assert page.evaluate("window.__marker") == "no reload"
    assert loaded == []
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
