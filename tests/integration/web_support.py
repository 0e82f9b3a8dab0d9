"""What the browser tests share: a served kameng with its web front-end, headless Chromium, and
a scriptable injected wallet.

- `WebStack`: `kameng serve`'s runtime (embedded chain, indexer, delivery agent, API) with the
  built front-end mounted at ``/``, on a free loopback port.
- `launch_browser`: Debian's Chromium driven by Playwright (never Playwright's own download).
- `InjectedWallet`: an EIP-1193 ``window.ethereum`` whose requests are answered in Python (signing
  with a local key), so tests can put it on the wrong network or make it refuse to sign.

Tests wait on what the page shows (Playwright's auto-waiting ``expect``), never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from playwright.sync_api import expect
from web3 import Web3

from backend.config import Settings
from backend.runtime import Runtime
from backend.vault.service import upload_codes
from contracts.chain import free_port
from contracts.encoding import Order, OrderState

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

    from contracts.chain import Chain
    from contracts.client import EscrowClient

ROOT = Path(__file__).resolve().parents[2]
#: Where `screenshot` writes. The README's pictures live in docs/screenshots; refresh them with
#: ``KAMENG_SCREENSHOTS_DIR=docs/screenshots pytest tests/integration/test_web_journeys.py``.
#: By default the tests write beside themselves (ignored by git), so a test run leaves the
#: committed pictures alone.
SCREENSHOTS = ROOT / os.environ.get("KAMENG_SCREENSHOTS_DIR", "tests/_screenshots")
CHROMIUM = "/usr/bin/chromium"
#: The flags Chromium needs here: root without a sandbox, and no calls to Google's services,
#: which this machine's closed network refuses (docs: .library machine notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: One USDT in its smallest units (the development USDT has 6 decimals).
USDT = 10**6
#: How long a page condition may take (chain transactions, delivery, the mirror).
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)

#: What pokes out of the screen: elements whose right edge is past the window's, unless a
#: scrolling (or clipping) ancestor that itself fits holds them.
OVERFLOW = """() => {
  const w = window.innerWidth;
  const held = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const ox = getComputedStyle(p).overflowX;
      if (ox !== "visible" && p.getBoundingClientRect().right <= w + 0.5) return true;
    }
    return false;
  };
  const classes = (el) =>
    el.className && typeof el.className === "string"
      ? "." + el.className.trim().split(/\\s+/).join(".")
      : "";
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + classes(el) +
    (el.dataset.test ? `[data-test=${el.dataset.test}]` : "");
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > w + 0.5 && !held(el)) {
      const path = [];
      for (let p = el; p && p !== document.body && path.length < 4; p = p.parentElement) {
        path.unshift(name(p));
      }
      out.push(`${path.join(" > ")} (right edge ${Math.round(r.right)} px): ` +
        JSON.stringify((el.textContent || "").trim().slice(0, 50)));
    }
  }
  return { scroll: document.documentElement.scrollWidth, width: w, out: out.slice(0, 12) };
}"""


@dataclass
class WebStack:
    """A running kameng with the web front-end, and handles on its chain and workers."""

    runtime: Runtime
    url: str
    server: Any
    thread: threading.Thread
    _codes: int = field(default=0)
    #: Every code uploaded by `stock_listing`, by listing, in index order.
    listing_codes: dict[int, list[str]] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        """The embedded chain."""
        return self.runtime.chain

    @property
    def escrow(self) -> EscrowClient:
        """The escrow client."""
        return self.runtime.escrow

    @property
    def dev(self) -> Any:
        """The development world: supplier, arbiter, buyers, listing."""
        assert self.runtime.dev is not None
        return self.runtime.dev

    def new_account(self, ether: int = 100) -> LocalAccount:
        """A fresh funded account (ether=0: an empty one)."""
        if ether == 0:
            account: LocalAccount = Account.create()
            return account
        return self.chain.new_account(ether=ether)

    def codes(self, n: int, prefix: str = "GIFT") -> list[str]:
        """`n` codes never used before in this stack."""
        start = self._codes
        self._codes += n
        return [f"{prefix}-{i:05d}-{(i * 7919) % 99991:05d}" for i in range(start, start + n)]

    def stock_listing(self, n: int, listing_id: int | None = None) -> list[str]:
        """Upload `n` fresh codes to a listing (the dev listing by default) through the vault,
        and wait until the catalog shows them; returns the codes."""
        lid = listing_id or self.dev.listing_id
        codes = self.codes(n)
        body = ("\n".join(codes) + "\n").encode()
        with self.runtime.sessions() as session:
            result = upload_codes(
                session, self.escrow, self.dev.supplier, lid, body, self.runtime.settings
            )
        known = self.listing_codes.setdefault(lid, [])
        assert result.first_index == len(known), "codes uploaded behind the tests' back"
        known.extend(codes)
        self.wait_until(
            f"listing {lid} to show {len(known)} committed codes",
            lambda: self.catalog_listing(lid)["committed"] >= len(known),
        )
        return codes

    def catalog_listing(self, listing_id: int) -> dict[str, Any]:
        """A listing as the catalog API shows it (waiting as long as `wait_until` would: a loaded
        machine can keep the in-process server from answering within httpx's default 5 s)."""
        url = f"{self.url}/catalog/listings/{listing_id}"
        answer: dict[str, Any] = httpx.get(url, timeout=30).json()
        return answer

    def codes_of_order(self, order_id: int, quantity: int) -> list[str]:
        """The codes an order was sold, from what the tests uploaded."""
        listing_id, first = order_id >> 32, order_id & 0xFFFFFFFF
        return self.listing_codes[listing_id][first : first + quantity]

    @contextmanager
    def hold_deliveries(self) -> Iterator[None]:
        """Keep the delivery agent from sealing anything inside the block (the supplier is slow).

        Returns only once any pass that began before the hold has finished, so an order paid
        inside the block is delivered only after it.
        """
        agent = self.runtime.agent
        entered = threading.Event()

        def held() -> list[int]:
            entered.set()
            return []

        agent.run_once = held
        try:
            if not entered.wait(10):
                raise AssertionError("the delivery agent did not come round")
            yield
        finally:
            del agent.run_once

    def travel(self, seconds: int) -> None:
        """Move the embedded chain's clock forward (the next block is `seconds` later)."""
        lock = self.chain.w3.provider._kameng_lock  # type: ignore[attr-defined]
        with lock:
            self.chain.travel_to(self.chain.timestamp() + seconds)

    def buy_over_api(self, buyer: LocalAccount, listing_id: int, quantity: int) -> int:
        """A buyer pays with the Python client (as `kameng buyer buy` does); returns the id."""
        from backend.keys import next_order_key, public_key_bytes

        price = int(self.catalog_listing(listing_id)["unit_price"])
        key, _nonce = next_order_key(self.escrow, buyer)
        self.escrow.tx.reset_nonce(buyer.address)
        oid, _order, _res = self.escrow.buy(
            buyer, listing_id, quantity, max_unit_price=price, buyer_pubkey=public_key_bytes(key)
        )
        return oid

    def confirm_over_api(self, buyer: LocalAccount, order_id: int) -> None:
        """The buyer confirms once the order is delivered (the struct comes from the API)."""
        from backend.client import KamengClient
        from contracts.encoding import Order

        with KamengClient(self.url) as client:
            detail = self.wait_until(
                f"order {order_id} to be delivered",
                lambda: _delivered(client.order(order_id, buyer)),
            )
        order = Order.from_record(detail)
        self.escrow.confirm(buyer, order_id, order)

    def usdt(self) -> Any:
        """The development world's USDT stand-in (6 decimals; anyone may mint it)."""
        from eth_utils import to_checksum_address

        from contracts.artifacts import load

        assert self.dev.usdt, "the development world deploys a USDT stand-in"
        return self.chain.w3.eth.contract(
            address=to_checksum_address(self.dev.usdt), abi=load("TestToken").abi
        )

    def usdt_listing(self, unit_price: int, codes: int) -> int:
        """A listing of the development supplier priced in the development USDT, bonded in it,
        with `codes` codes in stock; returns its id."""
        dev, escrow, token = self.dev, self.escrow, self.usdt()
        escrow.tx.send(dev.supplier, token.functions.mint(dev.supplier.address, 1_000 * USDT))
        escrow.tx.send(dev.supplier, token.functions.approve(escrow.address, 2**256 - 1))
        escrow.deposit_bond(dev.supplier, 100 * USDT, token=token.address)
        listing_id, _ = escrow.create_listing(
            dev.supplier,
            sku=dev.sku,
            unit_price=unit_price,
            token=token.address,
            bond_bps=1000,
            metadata_uri="kameng:dev/usdt",
        )
        self.stock_listing(codes, listing_id)
        return listing_id

    def wait_until(self, what: str, check: Any, timeout: float = 30.0) -> Any:
        """Poll a Python-side condition (the mirror, the chain) until it holds."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.runtime.check()
            time.sleep(0.05)  # polling a server-side condition with a deadline

    def stop(self) -> None:
        """Stop the server and the workers."""
        self.server.should_exit = True
        self.thread.join(10)
        self.runtime.stop()


def _delivered(detail: Any) -> Any:
    return detail if int(detail.state) == 2 else None


def start_stack() -> WebStack:
    """Start the embedded runtime (`kameng serve`'s) and serve its API with the front-end on a
    free port."""
    import uvicorn

    runtime = Runtime.embedded(
        Settings(environment="development", rate_limit_scale=1000.0), buyers=2
    )
    runtime.start(api=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    runtime.url = url
    app = runtime.app(domain=f"127.0.0.1:{port}", public_url=url)  # mounts backend/web/dist
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="kameng-web-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web server did not start on {url}")
        time.sleep(0.02)  # waiting for uvicorn's started flag, with a deadline
    return WebStack(runtime=runtime, url=url, server=server, thread=thread)


def launch_browser(playwright: Playwright) -> Browser:
    """Headless Debian Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def new_page(
    browser: Browser, *, phone: bool = False, locale: str | None = None
) -> tuple[BrowserContext, Page]:
    """A fresh browser profile (its own localStorage), preferring `locale` if given;
    `page.errors` collects uncaught script errors and Content-Security-Policy refusals."""
    lang: dict[str, Any] = {"locale": locale} if locale else {}
    if phone:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            **lang,
        )
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, **lang)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy refusal (something inline or from another origin) is a bug too.
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    return context, page


def delivered_order(stack: WebStack, oid: int, buyer: LocalAccount) -> Order | None:
    """The order's struct from the API once it is delivered, else None (for `wait_until`)."""
    from backend.client import KamengClient

    with KamengClient(stack.url) as client:
        order = Order.from_record(client.order(oid, buyer))
    return order if order.state == OrderState.DELIVERED else None


def connect_dev_wallet(page: Page, account: LocalAccount) -> None:
    """Connect the development wallet with `account`'s key, through the connect dialog."""
    page.get_by_test_id("connect").click()
    page.get_by_test_id("dev-key").fill("0x" + bytes(account.key).hex())
    page.get_by_test_id("import-dev-key").click()
    settle_after_connect(page, account.address)


def settle_after_connect(page: Page, address: str) -> None:
    """Wait until the wallet widget shows `address` and the page it re-renders is complete.

    Connecting a new account re-renders the current page; a click before that render ends
    could land on the page that is about to be replaced. <main> carries aria-busy while a
    render is under way.
    """
    expect(page.locator("#wallet")).to_contain_text(f"{address[:6]}…{address[-4:]}")
    expect(page.locator("#app")).not_to_have_attribute("aria-busy", "true")


def pause_page_clock(page: Page, ahead_s: float = 60.0) -> None:
    """Stop the page's timers (its clock must be installed: ``page.clock.install()``), after
    jumping `ahead_s` seconds on, which fires each timer due by then once: a poll or probe
    that was waiting runs now, and none runs again until ``page.clock.resume()``."""
    now_s = page.evaluate("Date.now()") / 1000  # Python's clock takes seconds, the page's ms
    page.clock.pause_at(now_s + ahead_s)


def sign_in(page: Page) -> None:
    """Press the page's "Sign in with Ethereum" button."""
    page.get_by_test_id("sign-in").click()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot as <name>.png in `SCREENSHOTS`: the full page, or (`full_page=False`)
    what the window shows."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def write_csv(tmp: Path, name: str, lines: list[str]) -> Path:
    """A CSV file of `lines`."""
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ an injected wallet

_SHIM = """
(() => {
  const listeners = {};
  window.ethereum = {
    isKamengTestWallet: true,
    async request({ method, params }) {
      const answer = await window.__kamengWallet(method, params || []);
      if (answer && answer.error) {
        const err = new Error(answer.error.message);
        err.code = answer.error.code;
        throw err;
      }
      return answer ? answer.result : null;
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); },
    removeListener(event, fn) {
      listeners[event] = (listeners[event] || []).filter((f) => f !== fn);
    },
    __emit(event, value) { for (const fn of listeners[event] || []) fn(value); },
  };
})();
"""


class InjectedWallet:
    """A browser wallet (EIP-1193) for tests: answers in Python and signs with a local key.

    Attributes:
        account: The key it signs with.
        chain_id: The network it says it is on (set it to another id to test a wrong network).
        reject_signatures: Refuse ``personal_sign`` as a person pressing "Reject" would: every
            request when True, or only messages containing this text.
        requests: Every method asked, in order.
        signed: The text of every ``personal_sign`` message, in order (refused ones too).
        typed: The typed data of every ``eth_signTypedData_v4`` request, in order (refused ones
            too); `reject_signatures` refuses them as it refuses ``personal_sign`` (a text
            matches the JSON of the typed data).
    """

    def __init__(self, stack: WebStack, account: LocalAccount, chain_id: int | None = None):
        self.stack = stack
        self.account = account
        self.chain_id = chain_id if chain_id is not None else stack.chain.chain_id
        self.reject_signatures: bool | str = False
        self.requests: list[str] = []
        self.signed: list[str] = []
        self.typed: list[dict[str, Any]] = []
        self._http = httpx.Client(timeout=30)
        self._page: Page | None = None
        self._rpc_id = 0

    def install(self, context: BrowserContext) -> None:
        """Put ``window.ethereum`` into every page of `context`."""
        context.expose_binding("__kamengWallet", self._answer)
        context.add_init_script(_SHIM)

    def _rpc(self, method: str, params: list[Any]) -> Any:
        self._rpc_id += 1
        body = {"jsonrpc": "2.0", "id": self._rpc_id, "method": method, "params": params}
        answer = self._http.post(f"{self.stack.url}/rpc", json=body).json()
        if "error" in answer:
            raise _RpcError(answer["error"])
        return answer["result"]

    def _answer(self, source: dict[str, Any], method: str, params: list[Any]) -> dict[str, Any]:
        self.requests.append(method)
        page = source.get("page")
        try:
            return {"result": self._handle(page, method, params)}
        except _RpcError as exc:
            return {"error": exc.error}

    def _handle(self, page: Any, method: str, params: list[Any]) -> Any:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.account.address]
        if method == "eth_chainId":
            return hex(self.chain_id)
        if method == "wallet_switchEthereumChain":
            self.chain_id = int(params[0]["chainId"], 16)
            if page is not None:
                page.evaluate(
                    "id => window.ethereum.__emit('chainChanged', id)", hex(self.chain_id)
                )
            return None
        if method == "personal_sign":
            data = bytes.fromhex(params[0][2:])
            self.signed.append(data.decode("utf-8", "replace"))
            reject = self.reject_signatures
            if reject is True or (isinstance(reject, str) and reject.encode() in data):
                raise _RpcError({"code": 4001, "message": "User rejected the request."})
            signed = self.account.sign_message(encode_defunct(primitive=data))
            return "0x" + bytes(signed.signature).hex()
        if method == "eth_signTypedData_v4":
            return self._sign_typed_data(params)
        if method == "eth_sendTransaction":
            if self.chain_id != self.stack.chain.chain_id:
                raise _RpcError({"code": 4901, "message": "wallet is on another chain"})
            return self._send(params[0])
        return self._rpc(method, params)

    def _sign_typed_data(self, params: list[Any]) -> str:
        """EIP-712 ``eth_signTypedData_v4``: params are the signing address and the typed data
        (JSON text, numbers as decimal strings as viem sends them); the signature is r s v."""
        address, data = params[0], params[1]
        text = data if isinstance(data, str) else json.dumps(data)
        typed: dict[str, Any] = json.loads(text)
        self.typed.append(typed)
        if str(address).lower() != self.account.address.lower():
            raise _RpcError({"code": 4100, "message": f"this wallet does not hold {address}"})
        reject = self.reject_signatures
        if reject is True or (isinstance(reject, str) and reject in text):
            raise _RpcError({"code": 4001, "message": "User rejected the request."})
        signed = self.account.sign_message(encode_typed_data(full_message=typed))
        return "0x" + bytes(signed.signature).hex()

    def _send(self, tx: dict[str, Any]) -> str:
        nonce = (
            int(tx["nonce"], 16)
            if tx.get("nonce")
            else int(self._rpc("eth_getTransactionCount", [self.account.address, "pending"]), 16)
        )
        call = {k: tx[k] for k in ("from", "to", "data", "value") if tx.get(k)}
        gas = int(tx["gas"], 16) if tx.get("gas") else int(self._rpc("eth_estimateGas", [call]), 16)
        block = self._rpc("eth_getBlockByNumber", ["latest", False])
        base = int(block.get("baseFeePerGas") or "0x0", 16)
        signed = self.account.sign_transaction(
            {
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": Web3.to_checksum_address(tx["to"]),
                "data": tx.get("data", "0x"),
                "value": int(tx.get("value") or "0x0", 16),
                "gas": gas + gas // 5,
                "maxFeePerGas": 2 * base + 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        return str(
            self._rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        )


#: The requests a wallet shows its owner to approve: a message to sign or a transaction to send.
PROMPTS = frozenset(
    {
        "personal_sign",
        "eth_sign",
        "eth_signTypedData",
        "eth_signTypedData_v3",
        "eth_signTypedData_v4",
        "eth_sendTransaction",
    }
)


def prompts(wallet: InjectedWallet) -> list[str]:
    """The wallet prompts `wallet` was asked for so far, in order (`PROMPTS`)."""
    return [m for m in wallet.requests if m in PROMPTS]


class _RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(json.dumps(error))
        self.error = error


def eth_text(wei: int) -> str:
    """An amount of the chain's coin as the page writes it in English (Intl, up to 6 decimals)."""
    value = (Decimal(wei) / Decimal(10**18)).quantize(Decimal("0.000001")).normalize()
    return f"{value:,f} ETH"


def open_operator_console(
    stack: WebStack, browser: Browser, who: LocalAccount
) -> tuple[BrowserContext, Page]:
    """A new page at ``#/operator`` with `who`'s development wallet connected and signed in."""
    context, page = new_page(browser)
    page.goto(f"{stack.url}/#/operator")
    connect_dev_wallet(page, who)
    sign_in(page)
    return context, page
