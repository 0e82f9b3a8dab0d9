"""URIs from the chain or a user are links only when safe, and disputes warn that they are public
(issue 19, finding 5).

Anyone can put any string on-chain as an evidence URI. Only ``https:``, ``ipfs:`` and ``data:``
URIs may become links, judged as a browser judges them (leading spaces and control characters
stripped, tabs and line breaks removed, the scheme case-insensitive); a ``data:`` link downloads
as application/octet-stream, so it is never rendered as HTML. Everything else is text marked "not
a link".

1. `links.js` on its own in Chromium, over a table of URIs (no kameng needed).
2. The arbiter console on a dispute whose evidence is ``javascript:alert(1)``,
   `` JaVaScRiPt:…``, ``https://…``, ``ipfs://…``, an HTML ``data:`` URI and a document whose
   file is ``javascript:``: which became anchors.
3. The buyer's dispute form warns, before anything is signed, that what is written there is public.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from eth_utils import keccak
from playwright.sync_api import expect
from web_support import ROOT, WebStack, connect_dev_wallet, new_page, sign_in

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, Page, Route

    from contracts.encoding import Order

SRC = ROOT / "backend" / "web" / "src"
ORIGIN = "http://kameng.test"
IPFS = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"

# ------------------------------------------------------------------ links.js on its own

#: (URI, expected href or None when it must stay text, whether it downloads)
CASES: list[tuple[str, str | None, bool]] = [
    ("javascript:alert(1)", None, False),
    (" JaVaScRiPt:alert(1)", None, False),
    ("\x01\x1f javascript:alert(1)", None, False),
    ("java\tscr\nipt:alert(1)", None, False),
    ("\njavascript:alert(1)\n", None, False),
    ("vbscript:msgbox(1)", None, False),
    ("http://example.org/evidence.json", None, False),
    ("file:///etc/passwd", None, False),
    ("/evidence/1.json", None, False),
    ("evidence.json", None, False),
    ("", None, False),
    ("https:", None, False),
    ("data:text/plain", None, False),  # no comma: not a data: URI
    ("https://example.org/evidence/1.json", "https://example.org/evidence/1.json", False),
    ("  HTTPS://Example.ORG/a b", "https://example.org/a%20b", False),
    (IPFS, IPFS, False),
    (
        "data:text/html,<script>alert(1)</script>",
        "data:application/octet-stream,<script>alert(1)</script>",
        True,
    ),
    (
        "\tDATA:image/svg+xml;charset=utf-8;BASE64,PHN2Zz4=",
        "data:application/octet-stream;base64,PHN2Zz4=",
        True,
    ),
    ("data:,plain%20text", "data:application/octet-stream,plain%20text", True),
]


def _serve_sources(route: Route) -> None:
    path = route.request.url[len(ORIGIN) :].split("?")[0]
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><body></body>")
        return
    file = (SRC / path.lstrip("/")).resolve()
    if not file.is_relative_to(SRC) or not file.is_file():
        route.fulfill(status=404, body="")
        return
    kind = "application/json" if file.suffix == ".json" else "text/javascript"
    route.fulfill(status=200, content_type=kind, body=file.read_text())


def _links_page(browser: Browser) -> Page:
    """A blank page of a made-up origin whose /*.js are backend/web/src's sources."""
    context, page = new_page(browser)
    context.route(f"{ORIGIN}/**", _serve_sources)
    page.goto(f"{ORIGIN}/")
    return page


def test_only_https_ipfs_and_data_uris_become_links(browser: Browser) -> None:
    page = _links_page(browser)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    judged: list[dict[str, Any]] = page.evaluate(
        """async (uris) => {
            const { safeLink, uriLink } = await import("/links.js");
            return uris.map((uri, i) => {
              const el = uriLink(uri, { "data-test": `uri-${i}` });
              document.body.append(el, document.createElement("br"));
              return { link: safeLink(uri), tag: el.tagName.toLowerCase() };
            });
        }""",
        [uri for uri, _href, _download in CASES],
    )
    for i, ((uri, href, download), got) in enumerate(zip(CASES, judged, strict=True)):
        element = page.get_by_test_id(f"uri-{i}")
        if href is None:
            assert got["link"] is None, (uri, got)
            assert got["tag"] == "span", (uri, got)
            expect(element.get_by_test_id("not-a-link")).to_have_text("not a link")
            expect(element).to_have_attribute("data-link", "no")
            element.click()  # text: nothing happens
        else:
            assert got["link"] == {"href": href, "download": download}, (uri, got)
            assert got["tag"] == "a", (uri, got)
            expect(element).to_have_attribute("href", href)
            if download:
                expect(element).to_have_attribute("download", "evidence")
            else:
                expect(element).to_have_attribute("target", "_blank")
                expect(element).to_have_attribute("rel", "noopener noreferrer")
    # No anchor on the page runs script, whatever its case or spacing.
    expect(page.locator('a[href*="script:" i]')).to_have_count(0)
    assert page.locator("a").count() == sum(1 for _u, href, _d in CASES if href)
    assert dialogs == []
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


def test_a_long_uri_shown_as_text_is_cut(browser: Browser) -> None:
    page = _links_page(browser)
    shown = page.evaluate(
        """async () => {
            const { uriLink } = await import("/links.js");
            const el = uriLink("javascript:" + "x".repeat(5000));
            document.body.append(el);
            return el.textContent;
        }"""
    )
    assert shown.startswith("javascript:xxx") and "(5011 characters)" in shown
    assert len(shown) < 300
    page.context.close()


# ------------------------------------------------------------------ kameng's pages


def _delivered_order(stack: WebStack, buyer: LocalAccount, order_id: int) -> Order:
    """The order's struct as the chain stores it once delivered (from the API)."""
    from backend.client import KamengClient
    from contracts.encoding import Order, OrderState

    def delivered(client: KamengClient) -> Any:
        detail = client.order(order_id, buyer)
        return detail if int(detail.state) == int(OrderState.DELIVERED) else None

    with KamengClient(stack.url) as client:
        d = stack.wait_until(f"order {order_id} to be delivered", lambda: delivered(client))
    return Order.from_tuple(
        [
            d.buyer,
            d.supplier,
            d.token,
            d.reseller,
            d.amount,
            d.bond,
            d.quantity,
            d.fee_bps,
            d.reseller_cut,
            d.dispute_window,
            d.deadline,
            OrderState(d.state),
            bytes.fromhex(d.release_digest[2:]),
        ]
    )


@pytest.fixture(scope="module")
def bought(stack: WebStack, browser: Browser) -> Iterator[tuple[LocalAccount, int, Page]]:
    """A buyer pays in the browser; the order page (the tab that bought it: no sign-in) is left
    open on the delivery."""
    stack.stock_listing(2)
    buyer = stack.new_account(ether=5)
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/buy/{stack.dev.listing_id}")
    connect_dev_wallet(page, buyer)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("order-state")).to_have_text("Delivered")
    order_id = int(page.url.rsplit("/", 1)[1])
    yield buyer, order_id, page
    context.close()


def test_the_dispute_form_warns_that_everything_in_it_is_public(
    bought: tuple[LocalAccount, int, Page],
) -> None:
    _buyer, _order_id, page = bought
    warning = page.get_by_test_id("evidence-public-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("published on the public chain")
    expect(warning).to_contain_text("Anyone can read it, forever")
    expect(warning).to_contain_text("Never paste a code, a PIN or personal data")
    # In the dispute form, before the text, the file and the button that signs.
    card = page.locator(".card").filter(has=page.get_by_test_id("dispute"))
    expect(card.get_by_test_id("evidence-public-warning")).to_have_count(1)
    order = page.evaluate(
        """() => ["evidence-public-warning", "dispute-text", "dispute-file", "dispute"].map(
            (t) => document.querySelector(`[data-test="${t}"]`))
            .every((el, i, all) => i === 0 || (all[i - 1].compareDocumentPosition(el)
              & Node.DOCUMENT_POSITION_FOLLOWING))"""
    )
    assert order, "the warning must come before the text, the file and the dispute button"
    warning_id = warning.get_attribute("id")
    expect(page.get_by_test_id("dispute-text")).to_have_attribute("aria-describedby", warning_id)
    expect(page.get_by_test_id("dispute-file")).to_have_attribute("aria-describedby", warning_id)
    assert page.errors == []  # type: ignore[attr-defined]


def test_arbiter_console_links_only_safe_evidence_uris(
    stack: WebStack, browser: Browser, bought: tuple[LocalAccount, int, Page]
) -> None:
    buyer, order_id, _page = bought
    order = _delivered_order(stack, buyer, order_id)
    stack.escrow.tx.reset_nonce(buyer.address)
    disputed, _ = stack.escrow.dispute(
        buyer, order_id, order, "javascript:alert(1)", keccak(text="opening")
    )
    document = json.dumps(
        {
            "title": "a document whose file is a script",
            "description": "see the file",
            "fileName": "proof.html",
            "fileURI": "javascript:alert(2)",
            "fileHash": "0x" + "00" * 32,
            "fileSize": 1,
        }
    )
    added = [
        " JaVaScRiPt:alert(document.domain)",
        "https://example.org/evidence/1.json",
        IPFS,
        "data:text/html,<script>alert(3)</script>",
        "data:application/json," + quote(document),
    ]
    for i, uri in enumerate(added):
        stack.escrow.add_evidence(buyer, order_id, disputed, uri, keccak(text=f"added {i}"))

    context, arbiter = new_page(browser)
    dialogs: list[str] = []
    arbiter.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    arbiter.goto(f"{stack.url}/#/arbiter")
    connect_dev_wallet(arbiter, stack.dev.arbiter)
    sign_in(arbiter)
    row = arbiter.locator(f'[data-test="dispute-row"][data-order="{order_id}"]')
    expect(row.locator('td[data-label="Evidence"]')).to_have_text("6")
    row.get_by_test_id("review").click()

    items = arbiter.get_by_test_id("evidence")
    expect(items).to_have_count(6)
    uris = arbiter.get_by_test_id("evidence-uri")
    expect(uris).to_have_count(5)  # the sixth is the decoded document
    anchors = arbiter.locator('a[data-test="evidence-uri"]')
    expect(anchors).to_have_count(3)
    expect(anchors.nth(0)).to_have_attribute("href", added[1])
    expect(anchors.nth(0)).to_have_attribute("target", "_blank")
    expect(anchors.nth(1)).to_have_attribute("href", added[2])
    expect(anchors.nth(2)).to_have_attribute(
        "href", "data:application/octet-stream,<script>alert(3)</script>"
    )
    expect(anchors.nth(2)).to_have_attribute("download", "evidence")
    texts = arbiter.locator('span[data-test="evidence-uri"]')
    expect(texts).to_have_count(2)
    expect(texts.nth(0)).to_contain_text("javascript:alert(1)")
    expect(texts.nth(1)).to_contain_text("JaVaScRiPt:alert(document.domain)")
    for text in texts.all():
        expect(text.get_by_test_id("not-a-link")).to_be_visible()
        text.click()
    # The document's file: a name shown as text, not a link to its javascript: URI.
    file = arbiter.get_by_test_id("evidence-file")
    expect(file).to_have_count(1)
    expect(file).to_have_js_property("tagName", "SPAN")
    expect(file).to_contain_text("proof.html")
    expect(file.get_by_test_id("not-a-link")).to_be_visible()
    expect(arbiter.locator('a[href*="script:" i]')).to_have_count(0)
    assert dialogs == []
    assert arbiter.errors == []  # type: ignore[attr-defined]
    context.close()
