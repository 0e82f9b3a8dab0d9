"""Issue 15: coupons (优惠券) in the browser, in Chinese and in English.

- Node: backend/web/src/coupons.js reads and writes exactly what contracts/coupons.py does (the
  share-link text both ways, the EIP-712 digest, the compact signature, the signer), prices as
  ``order_rules.coupon_prices`` does and refuses what ``coupons.fault`` refuses.
- Chromium, in each language: the development supplier issues a coupon on its dashboard (10% off
  and 0.5 USDT off each code, 3 uses, through a reseller's shop) after terms the escrow would
  refuse are refused in the page, with nothing signed or sent. A buyer opens the shop's link; on
  the buy page an expired coupon, a tampered one and a text that is no coupon are refused with
  nothing sent; with the coupon it sees the discounted price, pays, and the order on-chain holds
  exactly that amount and the reseller's cut; the coupon's number has one use on-chain and the
  supplier's page says so. Once the order is confirmed the reseller and the supplier see their
  parts credited. The supplier revokes the coupon while a second buyer's page is open: that
  buyer's payment is refused in words before anything is asked of its wallet.
- A browser wallet: the coupon is signed with ``eth_signTypedData_v4``, one prompt and no
  transaction; a refused signature makes no coupon.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import subprocess
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx
import pytest
from axe_support import assert_accessible
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from playwright.sync_api import expect
from web_support import (
    OVERFLOW,
    USDT,
    InjectedWallet,
    WebStack,
    connect_dev_wallet,
    delivered_order,
    new_page,
    prompts,
    screenshot,
    settle_after_connect,
    sign_in,
)

from contracts import coupons
from contracts.coupons import REVOKED, Coupon, CouponError
from contracts.order_rules import Terms, complete, coupon_prices

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
COUPONS_JS = ROOT / "backend" / "web" / "src" / "coupons.js"
#: Node runs the web's modules; the project needs it anyway (compiling, the web build), so a
#: machine without it fails here rather than skipping.
NODE = shutil.which("node")

PRICE = 10 * USDT
RESELLER_PRICE = 8 * USDT
SHOP_PRICE = 12 * USDT
DISCOUNT_BPS = 1_000  # 10%
AMOUNT_OFF = USDT // 2  # 0.5 USDT
MAX_USES = 3
QUANTITY = 2
#: 12 USDT less 10% less 0.5: 10.3 USDT a code; the reseller price 8 less 10% less 0.5: 6.7.
UNIT = 10_300_000
RESALE = 6_700_000

#: What each language's pages say at the steps the test checks.
TEXT = {
    "en": {
        "percentBad": "The percentage off must be above 0 and below 100",
        "tooLarge": "The amount off (9 USDT) must be below the price it comes out of (7.2 USDT)",
        "done": "is signed: 10% off and 0.5 USDT off each code",
        "terms": "10% off and 0.5 USDT off each code",
        "expired": "This coupon expired on",
        "tampered": "This coupon was not signed by the listing's supplier",
        "notACoupon": "This is not a coupon",
        "nothingSent": "Nothing was sent",
        "revoked": "The supplier has revoked this coupon.",
        "revokedDone": "is revoked",
        "atPay": "nothing was signed or sent",
        "revokedPill": "revoked",
    },
    "zh-CN": {
        "percentBad": "折扣必须是大于 0、小于 100 的百分数",
        "tooLarge": "减免金额（9 USDT）必须低于打折后被扣减的价格（7.2 USDT）",
        "done": "优惠券已签发（商品 #",
        "terms": "优惠 10%，每件减 0.5 USDT",
        "expired": "此优惠券已于",
        "tampered": "此优惠券不是该商品的供货商签发的",
        "notACoupon": "这不是有效的优惠券",
        "nothingSent": "没有发送任何交易",
        "revoked": "供货商已作废此优惠券。",
        "revokedDone": "优惠券已作废",
        "atPay": "没有签名，也没有发送任何交易",
        "revokedPill": "已作废",
    },
}


def usdt_text(amount: int) -> str:
    """An amount of the development USDT as the web shows it (fmtAmount: no trailing zeros)."""
    return f"{(Decimal(amount) / USDT).normalize():f} USDT"


# ------------------------------------------------------------------ coupons.js against Python

#: Reads {"cases", "prices", "faults", "bad"} from the file named by the last argument and prints
#: what coupons.js makes of each (bigints as decimal strings).
NODE_SCRIPT = """
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { hashTypedData } from "viem";
const [modulePath, inputPath] = process.argv.slice(-2);
const c = await import(pathToFileURL(modulePath).href);
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
const text = (_k, x) => (typeof x === "bigint" ? x.toString() : x);
const plain = (v) => JSON.parse(JSON.stringify(v, text));
const out = { cases: [], prices: [], faults: [], bad: [] };
for (const x of input.cases) {
  const read = c.parseCoupon(x.text);
  const made = c.makeCoupon(x.fields);
  const compact = x.signature
    ? [c.compactSignature(x.signature), c.compactSignature(x.signature01)]
    : null;
  out.cases.push({
    read: plain(read),
    again: c.couponText(read),
    made: c.couponText(made),
    spaced: c.couponText(c.parseCoupon(x.spaced)),
    digest: hashTypedData(c.couponTypedData(read, input.chainId, input.escrow)),
    signer: await c.couponSigner(read, input.chainId, input.escrow),
    compact,
    args: plain(c.couponArgs(read)),
  });
}
for (const [unit, resale, bps, off] of input.prices) {
  try {
    const floor = resale === null ? null : BigInt(resale);
    const p = c.couponPrice(BigInt(unit), floor, bps, BigInt(off));
    out.prices.push(plain(p));
  } catch (err) {
    out.prices.push({ error: err.key, base: String(err.params.base) });
  }
}
for (const [text, at] of input.faults) out.faults.push(c.couponFault(c.parseCoupon(text), at));
for (const text of input.bad) {
  try {
    c.parseCoupon(text);
    out.bad.push(null);
  } catch (err) {
    out.bad.push(err.key);
  }
}
process.stdout.write(JSON.stringify(out));
"""

#: `coupons.fault`'s sentences, by the message id of the catalogs coupons.js answers with.
FAULT_KEYS = {
    "EscrowCouponExpired": "coupon.fault.expired",
    "EscrowCouponForeign": "coupon.fault.foreign",
    "EscrowCouponNotYours": "coupon.fault.notYours",
    "EscrowBadBps": "coupon.fault.badBps",
}


def _fault_key(sentence: str | None) -> str | None:
    if sentence is None:
        return None
    if "revoked" in sentence:
        return "coupon.fault.revoked"
    if "EscrowCouponUsedUp" in sentence:
        return "coupon.fault.usedUp"
    (name,) = re.findall(r"\((\w+)\)$", sentence)
    return FAULT_KEYS[name]


def _random_coupon(rng: random.Random, i: int) -> Coupon:
    """Coupons over the whole range of every field (the last of each ten at the maximums)."""
    if i % 10 == 9:
        return Coupon(
            listing_id=2**256 - 1,
            sku=b"\xff" * 32,
            buyer="0x" + "ff" * 20,
            discount_bps=9_999,
            amount_off=2**96 - 1,
            max_uses=2**32 - 1,
            expiry=2**40 - 1,
            id=2**64 - 1,
        )
    by_sku = i % 3 == 0
    return Coupon(
        listing_id=0 if by_sku else rng.choice([1, rng.randrange(1, 2**256)]),
        sku=rng.randbytes(32) if by_sku or i % 2 else bytes(32),
        buyer=rng.choice(["0x" + "00" * 20, Account.from_key(rng.randbytes(32)).address]),
        discount_bps=rng.randrange(1, 10_000),
        amount_off=rng.choice([0, rng.randrange(2**96)]),
        max_uses=rng.choice([0, 1, rng.randrange(2**32)]),
        expiry=rng.randrange(1, 2**40),
        id=rng.choice([0, 7, 8, rng.randrange(2**64)]),
    )


def _hex32(raw: bytes) -> str:
    """A signature part as the text carries it: 32 bytes, zeros for an unsigned coupon."""
    return "0x" + (raw or bytes(32)).hex()


def _run_node(data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    assert NODE is not None, "node is not on PATH (the project needs Node.js 20+ and npm)"
    path = tmp_path / "input.json"
    path.write_text(json.dumps(data))
    done = subprocess.run(
        [NODE, "--input-type=module", "-", str(COUPONS_JS), str(path)],
        input=NODE_SCRIPT,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_coupons_js_reads_writes_signs_prices_and_refuses_as_python_does(tmp_path: Path) -> None:
    rng = random.Random(15)
    chain_id = 31_337
    escrow = Account.from_key(rng.randbytes(32)).address
    signer = Account.from_key(rng.randbytes(32))
    cases, expected = [], []
    for i in range(30):
        coupon = _random_coupon(rng, i)
        unsigned = i % 5 == 4
        signed = coupon if unsigned else coupons.sign(signer, coupon, chain_id, escrow)
        text = signed.text()
        row: dict[str, Any] = {
            "text": text,
            "spaced": " ".join(text[j : j + 60] for j in range(0, len(text), 60)) + "\n",
            "fields": {k: str(v) for k, v in signed.message().items()}
            | {"sku": "0x" + signed.sku.hex(), "buyer": signed.buyer}
            | {"r": _hex32(signed.r), "vs": _hex32(signed.vs)},
            "signature": None,
        }
        if not unsigned:
            raw = bytes(
                signer.sign_message(
                    encode_typed_data(full_message=coupons.typed_data(coupon, chain_id, escrow))
                ).signature
            )
            row["signature"] = "0x" + raw.hex()
            row["signature01"] = "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()
        cases.append(row)
        m = encode_typed_data(full_message=coupons.typed_data(signed, chain_id, escrow))
        signing_hash = keccak(b"\x19" + m.version + m.header + m.body)  # EIP-712's
        expected.append((signed, "0x" + signing_hash.hex()))

    prices: list[list[Any]] = []
    for _ in range(300):
        unit = rng.choice([1, 2, 100, rng.randrange(1, 2**96)])
        resale = rng.choice([None, rng.randrange(1, unit + 1)])
        bps = rng.choice([0, 1, 5_000, 9_999, rng.randrange(10_000)])
        off = rng.choice([0, 1, unit // 2, unit - 1, unit, rng.randrange(2**96)])
        prices.append([str(unit), None if resale is None else str(resale), bps, str(off)])
    prices.append([str(PRICE), str(RESELLER_PRICE), DISCOUNT_BPS, str(AMOUNT_OFF)])

    buyer = Account.from_key(rng.randbytes(32)).address
    base = Coupon(
        listing_id=5,
        sku=bytes(32),
        buyer="0x" + "00" * 20,
        discount_bps=1_000,
        amount_off=0,
        max_uses=3,
        expiry=1_000,
        id=9,
    )
    sku = rng.randbytes(32)
    variants = [
        base,
        replace(base, buyer=buyer),
        replace(base, listing_id=0, sku=sku),
        replace(base, max_uses=0),
        replace(base, discount_bps=10_000),
        replace(base, discount_bps=65_535),
    ]
    faults: list[list[Any]] = []
    want_faults: list[str | None] = []
    for coupon in variants:
        for listing_id, listing_sku in ((5, sku), (6, sku), (6, bytes(32)), (5, bytes(32))):
            for who in (buyer, Account.from_key(rng.randbytes(32)).address):
                for now in (999, 1_000, 1_001):
                    for used in (0, 2, 3, 4, REVOKED):
                        at = {
                            "listing_id": listing_id,
                            "listing_sku": listing_sku,
                            "buyer": who,
                            "now": now,
                            "used": used,
                        }
                        faults.append(
                            [
                                coupon.text(),
                                {
                                    "listingId": str(listing_id),
                                    "listingSku": "0x" + listing_sku.hex(),
                                    "buyer": who,
                                    "now": now,
                                    "used": used,
                                },
                            ]
                        )
                        want_faults.append(_fault_key(coupons.fault(coupon, **at)))

    good = cases[0]["text"]
    version2 = base64.urlsafe_b64encode(
        b"\x02" + base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))[1:]
    )
    bad = ["", "abc", good[:-4], good + "AAAA", version2.decode().rstrip("=")]
    for text in bad:  # Python refuses each of them too
        with pytest.raises(CouponError):
            Coupon.from_text(text)

    out = _run_node(
        {
            "chainId": chain_id,
            "escrow": escrow,
            "cases": cases,
            "prices": prices,
            "faults": faults,
            "bad": bad,
        },
        tmp_path,
    )

    for (signed, digest), case, got in zip(expected, cases, out["cases"], strict=True):
        read = got["read"]
        assert int(read["listingId"]) == signed.listing_id
        assert read["sku"] == "0x" + signed.sku.hex()
        assert read["buyer"] == to_checksum_address(signed.buyer)
        assert (read["discountBps"], int(read["amountOff"])) == (
            signed.discount_bps,
            signed.amount_off,
        )
        assert (read["maxUses"], read["expiry"], int(read["id"])) == (
            signed.max_uses,
            signed.expiry,
            signed.id,
        )
        assert (read["r"], read["vs"]) == (_hex32(signed.r), _hex32(signed.vs))
        # Written back, from what it read or from Python's fields, it is the same text.
        assert got["again"] == got["made"] == got["spaced"] == case["text"]
        assert got["digest"] == digest
        want_signer = signed.signer(chain_id, escrow)
        assert got["signer"] == want_signer
        if case["signature"]:
            assert want_signer == signer.address
            compact = {"r": _hex32(signed.r), "vs": _hex32(signed.vs)}
            assert got["compact"] == [compact, compact]
        message = {k: str(v) for k, v in signed.message().items()}
        message["sku"] = "0x" + signed.sku.hex()
        struct, r, vs = got["args"]
        assert {k: str(v) for k, v in struct.items()} == message
        assert list(struct) == [f["name"] for f in coupons.COUPON_TYPE]
        assert (r, vs) == (_hex32(signed.r), _hex32(signed.vs))
    # The signature names its signer on this chain's escrow only.
    assert sum(1 for g in out["cases"] if g["signer"] == signer.address) == 24

    for (unit, resale, bps, off), got in zip(prices, out["prices"], strict=True):
        try:
            want_unit, want_resale = coupon_prices(
                int(unit), None if resale is None else int(resale), bps, int(off)
            )
        except ValueError:
            assert got.get("error") == "coupon.fault.tooLarge", (unit, resale, bps, off, got)
            continue
        assert got == {
            "unit": str(want_unit),
            "resale": None if want_resale is None else str(want_resale),
        }, (unit, resale, bps, off)
    assert out["prices"][-1] == {"unit": "8500000", "resale": "6700000"}
    assert {"coupon.fault.tooLarge"} <= {p.get("error") for p in out["prices"]}

    assert out["faults"] == want_faults
    assert set(want_faults) == {
        None,
        *FAULT_KEYS.values(),
        "coupon.fault.revoked",
        "coupon.fault.usedUp",
    }
    assert out["bad"] == ["coupon.fault.notACoupon"] * len(bad)


# ------------------------------------------------------------------ in the browser


@pytest.fixture(scope="module")
def shop_listing(stack: WebStack) -> tuple[int, Any]:
    """A 10 USDT listing of the development supplier, open to resellers at 8 USDT, and a reseller
    selling it at 12 USDT in its shop."""
    escrow = stack.escrow
    lid = stack.usdt_listing(PRICE, 2 * QUANTITY + 2)
    reseller = stack.new_account(ether=1)
    escrow.set_reseller_price(stack.dev.supplier, lid, RESELLER_PRICE)
    escrow.set_shop_price(reseller, lid, SHOP_PRICE)
    stack.wait_until(f"the shop to list {lid}", lambda: _in_shop(stack, reseller.address, lid))
    return lid, reseller


def _in_shop(stack: WebStack, reseller: str, listing: int) -> bool:
    items = httpx.get(f"{stack.url}/shops/{reseller}", timeout=30).json()
    return any(int(item["listing_id"]) == listing for item in items)


def _credited(stack: WebStack, reseller: str, oid: int) -> int | None:
    """What the mirror says the shop was credited for an order (None before it settles)."""
    sales = httpx.get(f"{stack.url}/shops/{reseller}/sales", timeout=30).json()
    sale = next((x for x in sales if int(x["order_id"]) == oid), None)
    return None if sale is None or sale.get("commission") is None else int(sale["commission"])


def _nonce(stack: WebStack, address: str) -> int:
    return int(stack.chain.w3.eth.get_transaction_count(to_checksum_address(address)))


def _issue_on_the_dashboard(
    stack: WebStack, page: Page, locale: str, lid: int, reseller: str
) -> tuple[str, Coupon]:
    """The supplier's coupon card (its page open and signed in): terms the escrow would refuse
    are refused first, nothing signed or sent; then the coupon is signed. Returns the link and
    the coupon it carries."""
    text = TEXT[locale]
    supplier = stack.dev.supplier
    card = page.get_by_test_id("coupons-card")
    card.get_by_test_id("coupon-listing").select_option(str(lid))
    nonce = _nonce(stack, supplier.address)
    card.get_by_test_id("coupon-percent").fill("100")
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-issue-message")).to_contain_text(text["percentBad"])
    # 9 USDT off a reseller price of 8 less 10%: the escrow would refuse every purchase.
    card.get_by_test_id("coupon-percent").fill("10")
    card.get_by_test_id("coupon-amount").fill("9")
    card.get_by_test_id("coupon-shop").fill(reseller)
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-issue-message")).to_contain_text(text["tooLarge"])
    expect(card.get_by_test_id("coupon-link")).to_have_count(0)

    card.get_by_test_id("coupon-amount").fill("0.5")
    card.get_by_test_id("coupon-uses").fill(str(MAX_USES))
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-result")).to_contain_text(text["done"])
    expect(card.get_by_test_id("coupon-result")).to_contain_text(text["terms"])
    # Signed in the page: no transaction.
    assert _nonce(stack, supplier.address) == nonce
    link = card.get_by_test_id("coupon-link").get_attribute("href")
    assert link is not None
    m = re.fullmatch(rf"{re.escape(stack.url)}/#/s/{reseller}\?coupon=([A-Za-z0-9_-]{{240}})", link)
    assert m, link
    coupon = Coupon.from_text(m.group(1))
    assert coupon.signer(stack.chain.chain_id, stack.escrow.address) == supplier.address
    assert (coupon.listing_id, coupon.sku, int(coupon.buyer, 16)) == (lid, bytes(32), 0)
    assert (coupon.discount_bps, coupon.amount_off, coupon.max_uses) == (
        DISCOUNT_BPS,
        AMOUNT_OFF,
        MAX_USES,
    )
    assert coupon.expiry > stack.chain.timestamp() + 29 * 86_400
    # The next unused number: nothing counted or revoked under it yet.
    assert coupon.id >= 1
    assert stack.escrow.storage.coupon_uses(supplier.address, coupon.id) == 0
    row = card.locator(f'[data-test="coupon-row"][data-id="{coupon.id}"]')
    expect(row.get_by_test_id("coupon-uses")).to_have_text(f"0 / {MAX_USES}")
    return link, coupon


def _refused(stack: WebStack, page: Page, buyer: str, text_in: str, said: str) -> None:
    """The buy page refuses the coupon typed in, in words, and sends nothing."""
    nonce = _nonce(stack, buyer)
    page.get_by_test_id("coupon").fill(text_in)
    message = page.get_by_test_id("coupon-message")
    expect(message).to_contain_text(said)
    expect(page.get_by_test_id("pay")).to_be_disabled()
    assert _nonce(stack, buyer) == nonce


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_a_supplier_issues_a_coupon_and_a_shops_buyer_pays_with_it_until_it_is_revoked(
    stack: WebStack, browser: Browser, shop_listing: tuple[int, Any], locale: str
) -> None:
    text = TEXT[locale]
    escrow, token, supplier = stack.escrow, stack.usdt(), stack.dev.supplier
    lid, reseller = shop_listing

    # The supplier issues the coupon; its page stays open (it remembers what it issued).
    board, dashboard = new_page(browser, locale=locale)
    dashboard.goto(f"{stack.url}/#/supplier")
    connect_dev_wallet(dashboard, supplier)
    sign_in(dashboard)
    link, coupon = _issue_on_the_dashboard(stack, dashboard, locale, lid, reseller.address)
    assert_accessible(dashboard, f"supplier with a coupon issued ({locale})")
    dashboard.get_by_test_id("coupons-card").scroll_into_view_if_needed()
    screenshot(dashboard, f"coupon-issued-{locale}", full_page=False)
    assert dashboard.errors == []  # type: ignore[attr-defined]

    # A buyer opens the shop's link: the coupon is carried to the buy page.
    buyer = stack.new_account(ether=5)
    escrow.tx.send(stack.dev.admin, token.functions.mint(buyer.address, 100 * USDT))
    context, page = new_page(browser, locale=locale)
    page.goto(link)
    expect(page.get_by_test_id("shop-coupon-note")).to_contain_text(text["terms"])
    item = page.locator(f'[data-test="shop-item"][data-listing="{lid}"]')
    expect(item.get_by_test_id("shop-coupon")).to_be_visible()
    item.get_by_test_id("shop-buy").click()
    expect(page).to_have_url(
        re.compile(rf"#/buy/{lid}\?ref={reseller.address}&coupon={coupon.text()}$")
    )
    connect_dev_wallet(page, buyer)
    expect(page.get_by_test_id("coupon")).to_have_value(coupon.text())
    expect(page.get_by_test_id("coupon-message")).to_contain_text(text["terms"])
    expect(page.get_by_test_id("unit-price")).to_have_text(usdt_text(UNIT))

    # Coupons the escrow would refuse are refused here, before the wallet is asked anything.
    expired = stack.escrow.sign_coupon(
        supplier, replace(coupon, expiry=stack.chain.timestamp() - 1, id=coupon.id + 1000)
    )
    _refused(stack, page, buyer.address, expired.text(), text["expired"])
    expect(page.get_by_test_id("coupon-message")).to_contain_text(text["nothingSent"])
    tampered = replace(coupon, discount_bps=9_000)  # 90% off, under the supplier's signature
    _refused(stack, page, buyer.address, tampered.text(), text["tampered"])
    _refused(stack, page, buyer.address, coupon.text()[:-3], text["notACoupon"])
    assert token.functions.allowance(buyer.address, escrow.address).call() == 0

    # With the coupon: 2 codes at 10.3 USDT.
    page.get_by_test_id("coupon").fill(coupon.text())
    expect(page.get_by_test_id("coupon-message")).to_contain_text(text["terms"])
    page.get_by_test_id("quantity").fill(str(QUANTITY))
    expect(page.get_by_test_id("unit-price")).to_have_text(usdt_text(UNIT))
    expect(page.get_by_test_id("total")).to_have_text(usdt_text(QUANTITY * UNIT))
    saving = page.get_by_test_id("coupon-saving")
    expect(saving).to_contain_text(usdt_text(QUANTITY * (SHOP_PRICE - UNIT)))
    expect(saving).to_contain_text(usdt_text(SHOP_PRICE))
    assert_accessible(page, f"buy page with a coupon ({locale})")
    screenshot(page, f"coupon-buy-{locale}")
    page.get_by_test_id("pay").click()
    expect(page).to_have_url(re.compile(r"#/order/\d+$"))
    oid = int(page.url.rsplit("/", 1)[1])
    order = stack.wait_until(f"order {oid} delivered", lambda: delivered_order(stack, oid, buyer))
    assert escrow.order_matches(oid, order)
    assert (order.quantity, order.amount, order.reseller) == (
        QUANTITY,
        QUANTITY * UNIT,
        reseller.address,
    )
    # The shop keeps its margin of 12 - 8 less 10%: 3.6 USDT a code.
    assert order.reseller_cut == QUANTITY * (UNIT - RESALE) == QUANTITY * 3_600_000
    assert token.functions.balanceOf(buyer.address).call() == 100 * USDT - QUANTITY * UNIT
    assert token.functions.allowance(buyer.address, escrow.address).call() == 0
    assert escrow.storage.coupon_uses(supplier.address, coupon.id) == 1
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()

    # The supplier's page reads the use from the chain.
    row = dashboard.locator(f'[data-test="coupon-row"][data-id="{coupon.id}"]')
    expect(row.get_by_test_id("coupon-uses")).to_have_text(f"1 / {MAX_USES}")

    # Confirmed: the shop and the supplier are credited their parts, and see them.
    paid = complete(Terms.of(order))
    before = escrow.balance_of(supplier.address, token.address)
    before_shop = escrow.balance_of(reseller.address, token.address)
    escrow.tx.reset_nonce(buyer.address)
    escrow.confirm(buyer, oid, order)
    assert escrow.balance_of(supplier.address, token.address) - before == paid.to_supplier
    assert escrow.balance_of(reseller.address, token.address) - before_shop == paid.commission
    # The supplier gets its reseller price less the coupon, as if it had sold at 6.7 USDT.
    at_resale = complete(Terms(QUANTITY * RESALE, 0, order.fee_bps, 0))
    assert abs(paid.to_supplier - at_resale.to_supplier) <= 1
    stack.wait_until(
        f"the mirror to credit order {oid}'s margin",
        lambda: _credited(stack, reseller.address, oid) == paid.commission,
    )
    shop_context, shop_page = new_page(browser, locale=locale)
    shop_page.goto(f"{stack.url}/#/reseller")
    connect_dev_wallet(shop_page, reseller)
    sale = shop_page.locator(f'[data-test="resell-sale"][data-order="{oid}"]')
    expect(sale.get_by_test_id("resell-credited")).to_have_text(usdt_text(paid.commission))
    shop_context.close()
    credited = escrow.balance_of(supplier.address, token.address)
    expect(dashboard.get_by_test_id("withdrawable-amount").filter(has_text="USDT")).to_have_text(
        usdt_text(credited)
    )

    # A second buyer opens the link; meanwhile the supplier revokes the coupon.
    second = stack.new_account(ether=5)
    escrow.tx.send(stack.dev.admin, token.functions.mint(second.address, 100 * USDT))
    context, page = new_page(browser, locale=locale)
    page.goto(f"{stack.url}/#/buy/{lid}?ref={reseller.address}&coupon={coupon.text()}")
    connect_dev_wallet(page, second)
    expect(page.get_by_test_id("unit-price")).to_have_text(usdt_text(UNIT))

    row.get_by_test_id("coupon-revoke").click()
    row.get_by_test_id("coupon-revoke-yes").click()
    expect(dashboard.get_by_test_id("coupon-outcome")).to_contain_text(text["revokedDone"])
    assert escrow.storage.coupon_uses(supplier.address, coupon.id) == REVOKED
    expect(row.get_by_test_id("coupon-uses")).to_have_text(text["revokedPill"])
    assert dashboard.errors == []  # type: ignore[attr-defined]
    board.close()

    nonce = _nonce(stack, second.address)
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("coupon-message")).to_contain_text(text["revoked"])
    expect(page.get_by_test_id("buy-message")).to_contain_text(text["atPay"])
    assert _nonce(stack, second.address) == nonce
    assert token.functions.allowance(second.address, escrow.address).call() == 0
    assert token.functions.balanceOf(second.address).call() == 100 * USDT
    # Opened again, the page says so at once and offers nothing to pay.
    page.reload()
    expect(page.get_by_test_id("coupon-message")).to_contain_text(text["revoked"])
    expect(page.get_by_test_id("pay")).to_be_disabled()
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def test_a_browser_wallet_signs_a_coupon_in_one_prompt_and_no_transaction(
    stack: WebStack, browser: Browser, shop_listing: tuple[int, Any]
) -> None:
    lid, _reseller = shop_listing
    supplier = stack.dev.supplier
    context, page = new_page(browser, locale="en")
    wallet = InjectedWallet(stack, supplier)
    wallet.install(context)
    page.goto(f"{stack.url}/#/supplier")
    page.get_by_test_id("connect").click()
    page.get_by_test_id("connect-injected").click()
    settle_after_connect(page, supplier.address)
    sign_in(page)
    card = page.get_by_test_id("coupons-card")
    expect(card.get_by_test_id("coupon-listing")).to_contain_text(f"#{lid}")
    card.get_by_test_id("coupon-listing").select_option(str(lid))
    card.get_by_test_id("coupon-amount").fill("1.25")
    card.get_by_test_id("coupon-id").fill("777")
    nonce = _nonce(stack, supplier.address)

    # The person presses "Reject": no coupon, no link.
    wallet.reject_signatures = True
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-issue-message")).to_contain_text("rejected")
    expect(card.get_by_test_id("coupon-link")).to_have_count(0)
    expect(card.get_by_test_id("coupons-none")).to_be_visible()

    wallet.reject_signatures = False
    asked = len(prompts(wallet))
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-link")).to_be_visible()
    assert prompts(wallet)[asked:] == ["eth_signTypedData_v4"]
    assert _nonce(stack, supplier.address) == nonce
    typed = wallet.typed[-1]
    assert typed["primaryType"] == "Coupon"
    assert to_checksum_address(typed["domain"]["verifyingContract"]) == stack.escrow.address
    assert int(typed["domain"]["chainId"]) == stack.chain.chain_id
    link = card.get_by_test_id("coupon-link").get_attribute("href")
    assert link is not None and f"#/buy/{lid}?coupon=" in link
    coupon = Coupon.from_text(unquote(link.rsplit("=", 1)[1]))
    assert (coupon.id, coupon.amount_off, coupon.discount_bps, coupon.max_uses) == (
        777,
        1_250_000,
        0,
        0,
    )
    assert coupon.signer(stack.chain.chain_id, stack.escrow.address) == supplier.address
    row = card.locator('[data-test="coupon-row"][data-id="777"]')
    expect(row.get_by_test_id("coupon-uses")).to_contain_text("no limit")
    # The same number again is refused before the wallet is asked.
    card.get_by_test_id("coupon-amount").fill("1")
    card.get_by_test_id("coupon-id").fill("777")
    asked = len(prompts(wallet))
    card.get_by_test_id("coupon-issue").click()
    expect(card.get_by_test_id("coupon-issue-message")).to_contain_text(
        "You issued coupon number 777 in this browser already"
    )
    assert prompts(wallet)[asked:] == []
    _fits_a_phone(page, "supplier's coupons")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()

    # Anyone opening the link sees the price it leaves, before connecting a wallet.
    context, page = new_page(browser, locale="en")
    page.goto(link)
    expect(page.get_by_test_id("coupon-message")).to_contain_text("1.25 USDT off each code")
    expect(page.get_by_test_id("unit-price")).to_have_text(usdt_text(PRICE - 1_250_000))
    assert_accessible(page, "buy page with a coupon, no wallet")
    _fits_a_phone(page, "buy page with a coupon")
    assert page.errors == []  # type: ignore[attr-defined]
    context.close()


def _fits_a_phone(page: Page, name: str, width: int = 360) -> None:
    """At a phone's width the page is no wider than the screen (the link and the coupon's text
    wrap or scroll inside their boxes)."""
    page.set_viewport_size({"width": width, "height": 780})
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= width, (
        f"the {name} page is {found['scroll']} px wide on a {width} px screen; past the edge:\n"
        + "\n".join(found["out"])
    )
