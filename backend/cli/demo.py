"""`kameng demo`: the whole platform in one scripted story on the embedded chain.

1. the escrow is deployed and the roles set up;
2. a supplier bonds and uploads 1,000 codes through the API (validated, encrypted, committed);
3. 20 buyers pay into escrow, one of them a wholesale buyer taking 50 codes;
4. the delivery agent seals every order to its buyer's key and posts the digests;
5. buyers fetch their releases, check every code against the chain, and confirm;
6. one buyer disputes and the arbiter rules from the queue;
7. a second supplier goes silent, and its buyer reclaims the payment after the deadline;
8. one buyer never confirms: after the dispute window the keeper settles the order by itself;
9. a listing priced in a USDT-like token is sold through a reseller's shop (分站), delivered
   on-chain, and the payment split between the supplier, the shop and the platform;

and supplier A's webhook hears of each paid, completed and disputed order, signed (Standard
Webhooks), through the notification workers.

Everything runs for real in this process: the chain (eth-tester), the indexer, the delivery
agent, the keeper and the API under uvicorn, which the buyers, the supplier and the arbiter
reach over HTTP.
Every on-chain step is printed with its transaction hash and gas; the full hashes are written
to ``var/demo-transcript.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from eth_utils import keccak
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from backend.cli.app import app, console, err_console

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from nacl.public import PrivateKey

    from backend.client import KamengClient
    from contracts.chain import Chain
    from contracts.client import EscrowClient, TxResult
    from contracts.encoding import Order

T = TypeVar("T")
ETH = 10**18
PRICE = 10**16  # 0.01 ETH per code
USDT = 10**6  # the development USDT has 6 decimals
VIP_PRICE = 15 * USDT
#: What supplier A receives a code from a reseller's sale (代理价).
RESELLER_PRICE = 13 * USDT
#: Codes the stablecoin chapter's buyer takes.
STABLECOIN_QUANTITY = 2
#: The coupon supplier A signs in the stablecoin chapter: 1 USDT off a code.
COUPON_OFF = 1_000_000
#: The stablecoin listing's wholesale tier (批发价): 5% off from 10 codes.
WHOLESALE_FROM = 10
WHOLESALE_BPS = 500
WHOLESALE = 50


def short(tx_hash: str) -> str:
    """A transaction hash shortened for the story (the transcript keeps it whole)."""
    return f"{tx_hash[:10]}…{tx_hash[-8:]}"


@dataclass
class Story:
    """Prints the story and keeps the transcript of every transaction."""

    started: float = field(default_factory=time.monotonic)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def chapter(self, title: str) -> None:
        """Start a chapter."""
        console.print()
        console.rule(f"[bold]{title}[/bold]", align="left")

    def say(self, text: str) -> None:
        """Narrate."""
        console.print(f"  {text}", soft_wrap=True)

    def tx(self, what: str, res: TxResult, kind: str) -> TxResult:
        """Print and record an on-chain step."""
        console.print(
            f"  [green]✓[/green] {what:<54} {short(res.tx_hash)} gas {res.gas_used:>9,}",
            soft_wrap=True,
        )
        self.steps.append(
            {
                "step": what,
                "kind": kind,
                "tx": res.tx_hash,
                "block": res.block_number,
                "gas": res.gas_used,
            }
        )
        return res

    def gas_by_kind(self) -> dict[str, list[int]]:
        """Gas of every step, grouped by kind."""
        out: dict[str, list[int]] = {}
        for s in self.steps:
            out.setdefault(s["kind"], []).append(int(s["gas"]))
        return out


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `check` until it returns a value.

    Raises:
        TimeoutError: it did not within `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling a condition of the running system, with a deadline


def _receipt_result(escrow: EscrowClient, tx_hash: str) -> TxResult:
    receipt = escrow.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return escrow.result(dict(receipt))


@dataclass
class Purchase:
    """One buyer's order."""

    label: str
    buyer: LocalAccount
    key: PrivateKey
    order_id: int
    order: Order
    quantity: int
    paid_block: int
    paid_at: float
    latency_ms: float | None = None


@app.command("demo")
def demo_cmd(
    codes: Annotated[int, typer.Option(help="How many codes the supplier uploads.")] = 1000,
    buyers: Annotated[
        int, typer.Option(help="How many buyers (one wholesale, one refunded).")
    ] = 20,
    transcript: Annotated[
        Path, typer.Option(help="Where to write every transaction of the run (JSON).")
    ] = Path("var/demo-transcript.json"),
) -> None:
    """Run the whole platform on the embedded chain: deploy, bond and upload, 20 buyers,
    deliveries, verify and confirm, a dispute ruled, a refund after a missed deadline, and an
    order the keeper settles by itself after its dispute window."""
    if buyers < 4 or codes < WHOLESALE + buyers * 3:
        err_console.print(
            f"[red]error:[/red] need at least 4 buyers and {WHOLESALE + buyers * 3} codes"
        )
        raise typer.Exit(2)
    from contracts.compiler import build

    if build():
        console.print("compiled the contracts")
    story = Story()
    try:
        _run(story, codes=codes, n_buyers=buyers, transcript=transcript)
    except Exception as exc:  # the demo reports any failure as one readable line
        err_console.print(f"[red]demo failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc


def _run(story: Story, *, codes: int, n_buyers: int, transcript: Path) -> None:
    from pydantic import SecretStr

    from backend.client import KamengClient
    from backend.config import Settings
    from backend.runtime import Runtime
    from contracts.chain import embedded_chain
    from contracts.client import EscrowClient, EscrowConfig
    from contracts.encoding import sku_id

    console.rule("[bold]kameng demo[/bold]: escrowed card codes on the embedded chain")
    chain = embedded_chain()

    # ------------------------------------------------------------------ 1. deploy
    story.chapter("1. Deploy the escrow and set up the roles")
    admin = chain.new_account(ether=100)
    arbiter = chain.new_account(ether=100)
    fees = chain.new_account(ether=1)
    supplier = chain.new_account(ether=1000)
    delivery = chain.new_account(ether=10)
    silent = chain.new_account(ether=1000)
    keeper = chain.new_account(ether=10)  # no role: it only calls what anyone may call
    from contracts.client import deploy_contract

    address, res = deploy_contract(
        chain,
        admin,
        "CodeEscrow",
        admin.address,
        EscrowConfig(fee_recipient=fees.address).as_tuple(),
    )
    escrow = EscrowClient(chain, address)
    story.tx(f"operator deploys CodeEscrow at {address[:10]}…", res, "deploy")
    story.tx(
        "operator names an arbiter",
        escrow.grant_role(admin, "ARBITER_ROLE", arbiter.address),
        "admin",
    )
    sku = sku_id("steam-wallet-50")
    story.tx(
        "rights holder whitelists supplier A for steam-wallet-50",
        escrow.authorize(admin, supplier.address, sku, keccak(text="licence: distributor")),
        "admin",
    )
    story.tx(
        "rights holder whitelists supplier B for the same sku",
        escrow.authorize(admin, silent.address, sku, keccak(text="licence: reseller")),
        "admin",
    )
    story.tx(
        "supplier A proposes its delivery agent's key",
        escrow.set_delivery_key(supplier, delivery.address),
        "admin",
    )
    story.tx(
        "the delivery agent's key accepts",
        escrow.accept_delivery_key(delivery, supplier.address),
        "admin",
    )

    runtime = Runtime.local(
        Settings(
            environment="development",
            keeper_key=SecretStr("0x" + bytes(keeper.key).hex()),
            keeper_poll_seconds=0.2,
        ),
        chain=chain,
        escrow=escrow,
        delivery_account=delivery,
        suppliers=[supplier],
    )
    try:
        runtime.start()
        story.say(
            f"backend up at {runtime.url}: API, indexer, delivery agent and keeper in this "
            "process, SQLite in a temporary directory"
        )
        _story(
            story,
            chain,
            escrow,
            KamengClient(runtime.url or ""),
            admin=admin,
            arbiter=arbiter,
            supplier=supplier,
            silent=silent,
            sku=sku,
            codes=codes,
            n_buyers=n_buyers,
            transcript=transcript,
        )
        runtime.check()
    finally:
        runtime.stop()


def _story(
    story: Story,
    chain: Chain,
    escrow: EscrowClient,
    api: KamengClient,
    *,
    admin: LocalAccount,
    arbiter: LocalAccount,
    supplier: LocalAccount,
    silent: LocalAccount,
    sku: bytes,
    codes: int,
    n_buyers: int,
    transcript: Path,
) -> None:
    from backend.client import KamengClient
    from backend.keys import next_order_key, public_key_bytes
    from backend.release import verify_release_onchain
    from backend.runtime import demo_codes
    from contracts.encoding import commitment, leaf
    from contracts.merkle import MerkleTree

    # ------------------------------------------------------------------ 2. bond and upload
    story.chapter(f"2. Supplier A bonds and uploads {codes:,} codes")
    story.tx(
        "supplier A posts a 20 ETH bond (保证金)", escrow.deposit_bond(supplier, 20 * ETH), "bond"
    )
    listing_id, res = escrow.create_listing(
        supplier,
        sku=sku,
        unit_price=PRICE,
        delivery_window=3600,
        dispute_window=86_400,
        bond_bps=2000,
        metadata_uri="kameng:steam-wallet-50",
    )
    story.tx(f"supplier A opens listing {listing_id} at 0.01 ETH per code", res, "listing")
    hook = WebhookInbox.start()
    subscribed = api_post_endpoint(api.base_url, supplier, hook.url)
    story.say(f"supplier A subscribes a webhook at {hook.url} for its orders' events")
    csv = b"code,expires,note\n" + b"".join(
        c + b",2027-12-31,batch 2026-11\n" for c in demo_codes(codes)
    )
    sup = KamengClient(api.base_url, timeout=600)
    sup.sign_in(supplier)
    story.say(f"supplier A signs in with Ethereum (EIP-4361) and uploads a {len(csv):,}-byte CSV")
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("vault: validate, encrypt, commit", total=codes)
        upload = sup.upload_codes(
            listing_id, csv, progress=lambda d, t: bar.update(task, completed=d, total=t)
        )
    story.say(
        "the vault checked every row (encoding, length, duplicates by keyed HMAC), "
        "salted and committed each code, and encrypted it with AES-256-GCM"
    )
    story.tx(
        f"vault commits {upload.count:,} codes, root {upload.root[:10]}…",
        _receipt_result(escrow, upload.tx_hash or ""),
        "commitBatch",
    )

    # supplier B commits codes directly: it will take the money and go silent
    story.tx("supplier B posts a 1 ETH bond", escrow.deposit_bond(silent, ETH), "bond")
    silent_listing, res = escrow.create_listing(
        silent,
        sku=sku,
        unit_price=PRICE - 10**15,
        delivery_window=3600,
        dispute_window=86_400,
        bond_bps=1000,
        metadata_uri="kameng:cheaper",
    )
    story.tx(f"supplier B undercuts with listing {silent_listing} at 0.009 ETH", res, "listing")
    salts = [os.urandom(32) for _ in range(10)]
    tree = MerkleTree(
        [
            leaf(i, commitment(s, c))
            for i, (s, c) in enumerate(zip(salts, demo_codes(10, start=10**6), strict=True))
        ]
    )
    story.tx(
        "supplier B commits 10 codes from its own backend",
        escrow.commit_batch(silent, silent_listing, tree.root, 10),
        "commitBatch",
    )

    def both_listed() -> list[Any] | None:
        rows = api.listings(sku="0x" + sku.hex())
        return rows if len(rows) == 2 and all(r.stock > 0 for r in rows) else None

    catalog = wait_for("the catalog to show both listings", both_listed)
    story.say(
        "catalog, by price: "
        + "; ".join(
            f"listing {r.listing_id} {r.unit_price / ETH:.3f} ETH, {r.stock} in stock"
            for r in sorted(catalog, key=lambda r: r.unit_price)
        )
    )

    # ------------------------------------------------------------------ 3. buyers pay
    story.chapter(f"3. {n_buyers} buyers pay into escrow (交易担保)")
    purchases: list[Purchase] = []
    buyers = [chain.new_account(ether=10) for _ in range(n_buyers)]
    for i, buyer in enumerate(buyers):
        wholesale = i == 0
        refund_case = i == n_buyers - 1
        qty = WHOLESALE if wholesale else (1 + i % 3 if not refund_case else 1)
        lid = silent_listing if refund_case else listing_id
        price = PRICE - 10**15 if refund_case else PRICE
        key, _nonce = next_order_key(escrow, buyer)
        escrow.tx.reset_nonce(buyer.address)
        oid, order, res = escrow.buy(
            buyer, lid, qty, max_unit_price=price, buyer_pubkey=public_key_bytes(key)
        )
        label = "wholesale buyer" if wholesale else f"buyer {i:02d}"
        who = "supplier B" if refund_case else "supplier A"
        story.tx(f"{label} pays {price * qty / ETH:g} ETH for {qty} code(s) to {who}", res, "buy")
        p = Purchase(
            label=label,
            buyer=buyer,
            key=key,
            order_id=oid,
            order=order,
            quantity=qty,
            paid_block=res.block_number,
            paid_at=time.monotonic(),
        )
        if not refund_case:
            api.wait_release(oid, buyer, timeout=30, poll=0.005)
            p.latency_ms = (time.monotonic() - p.paid_at) * 1000
        purchases.append(p)

    # ------------------------------------------------------------------ 4. deliveries
    story.chapter("4. The delivery agent seals each order to its buyer's key and posts digests")
    delivered_by_a = purchases[:-1]
    latencies = sorted(p.latency_ms for p in delivered_by_a if p.latency_ms is not None)
    story.say(
        f"each release was sealed, delivered on-chain and fetchable {latencies[0]:.0f} to "
        f"{latencies[-1]:.0f} ms after its payment was mined "
        f"(median {statistics.median(latencies):.0f} ms)"
    )
    deliver_txs: dict[str, int] = {}
    for p in delivered_by_a:

        def delivered(p: Purchase = p) -> Any:
            detail = api.order(p.order_id, p.buyer)
            return detail if detail.state == 2 else None

        detail = wait_for(f"order {p.order_id} delivered in the mirror", delivered)
        for ev in detail.events:
            if ev.name == "OrderDelivered":
                deliver_txs[ev.tx_hash] = deliver_txs.get(ev.tx_hash, 0) + 1
    for tx_hash, n in deliver_txs.items():
        story.tx(
            f"agent posts {n} release digest(s) in one deliver tx",
            _receipt_result(escrow, tx_hash),
            "deliver",
        )
    story.say(
        f"{len(delivered_by_a)} orders of supplier A delivered in {len(deliver_txs)} "
        "transaction(s); supplier B's agent never shows up"
    )

    # ------------------------------------------------------------------ 5. verify and confirm
    disputer = delivered_by_a[len(delivered_by_a) // 2]
    forgetful = delivered_by_a[-1]
    story.chapter("5. Buyers fetch, verify against the chain, and confirm (钱货两清)")
    verified_codes = 0
    for p in delivered_by_a:
        release = api.release(p.order_id, p.buyer)
        verified = verify_release_onchain(release, p.key, escrow, p.paid_block)
        verified_codes += len(verified.codes)
        if p is disputer:
            story.say(
                f"{p.label}: {len(verified.codes)} code(s) verified, but the game says "
                "one was already redeemed: no confirmation"
            )
            continue
        if p is forgetful:
            story.say(
                f"{p.label}: {len(verified.codes)} code(s) verified, redeemed in the game, "
                "and never presses Confirm"
            )
            continue
        order = _current(escrow, api, p)
        story.tx(
            f"{p.label}: {len(verified.codes)} code(s) verified on-chain; confirms",
            escrow.confirm(p.buyer, p.order_id, order),
            "confirm",
        )

    # ------------------------------------------------------------------ 6. dispute
    story.chapter("6. A dispute, ruled by the arbiter from on-chain evidence")
    order = _current(escrow, api, disputer)
    evidence = keccak(text="screenshot: code already redeemed at 2026-11-26T08:00Z")
    disputed, res = escrow.dispute(
        disputer.buyer, disputer.order_id, order, "kameng:evidence/redeemed-screenshot", evidence
    )
    story.tx(f"{disputer.label} opens a dispute with evidence", res, "dispute")
    judge = KamengClient(api.base_url)
    judge.sign_in(arbiter)
    queue = wait_for("the dispute in the arbiter's queue", lambda: judge.disputes() or None)
    head = queue[0]
    story.say(
        f"arbiter signs in and sees {len(queue)} dispute(s); oldest: order "
        f"{head.order_id}, {head.seconds_left // 3600} h left to rule"
    )
    res = escrow.rule(
        arbiter,
        disputer.order_id,
        disputed,
        buyer_bps=10_000,
        slash_bps=5000,
        bundle_hash=keccak(text=f"bundle {disputer.order_id}"),
        reason=b"code-already-redeemed".ljust(32, b"\0"),
    )
    story.tx("arbiter rules: buyer refunded, half the bond slashed", res, "rule")

    # ------------------------------------------------------------------ 7. refund
    story.chapter("7. Supplier B misses its delivery deadline (货款两空 prevented)")
    victim = purchases[-1]
    chain.travel_to(victim.order.deadline + 1)
    story.say("an hour passes on-chain with no delivery from supplier B")
    story.tx(
        f"{victim.label} reclaims the whole payment",
        escrow.refund(victim.buyer, victim.order_id, victim.order),
        "refund",
    )
    story.tx(f"{victim.label} withdraws the refund", escrow.withdraw(victim.buyer), "withdraw")
    story.tx(
        f"{disputer.label} withdraws the ruling and slashed bond",
        escrow.withdraw(disputer.buyer),
        "withdraw",
    )

    # ------------------------------------------------------------------ 8. keeper
    story.chapter("8. Nobody clicks: the keeper settles after the dispute window (自动结算)")
    chain.travel_to(_current(escrow, api, forgetful).deadline + 1)
    story.say(
        f"a day passes on-chain; {forgetful.label}'s dispute window closes with no dispute "
        "and no confirmation"
    )

    def settled_by_keeper() -> Any:
        detail = api.order(forgetful.order_id, forgetful.buyer)
        return next((e for e in detail.events if e.name == "OrderSettled"), None)

    settled = wait_for(f"the keeper to settle order {forgetful.order_id}", settled_by_keeper)
    story.tx(
        f"keeper settles order {forgetful.order_id}: supplier A paid, nobody clicked",
        _receipt_result(escrow, settled.tx_hash),
        "settle",
    )
    story.tx("supplier A withdraws its earnings", escrow.withdraw(supplier), "withdraw")

    # ------------------------------------------------------------------ summary
    wait_for("the mirror to settle", lambda: _mirror_done(api, sup, victim, len(purchases)))

    def all_heard() -> dict[str, int] | None:
        kinds = hook.verified(subscribed)
        paid = kinds.get("order.paid", 0) >= len(delivered_by_a)
        # Every order of supplier A completed but the disputed one (ruled instead).
        completed = kinds.get("order.completed", 0) >= len(delivered_by_a) - 1
        return kinds if paid and completed else None

    heard = wait_for("supplier A's webhook to hear of its paid and completed orders", all_heard)
    hook.stop()

    # ------------------------------------------------------------------ 9. a stablecoin
    stablecoin = _stablecoin_chapter(story, chain, escrow, api, sup, admin=admin, supplier=supplier)
    _summary(
        story,
        api,
        sup,
        purchases,
        verified_codes,
        listing_id,
        silent_listing,
        transcript,
        heard,
        stablecoin,
    )


def _stablecoin_chapter(
    story: Story,
    chain: Chain,
    escrow: EscrowClient,
    api: KamengClient,
    sup: KamengClient,
    *,
    admin: LocalAccount,
    supplier: LocalAccount,
) -> str:
    """Chapter 9: a listing priced in a USDT-like token, bought and confirmed; its summary line."""
    from urllib.parse import quote

    from eth_utils import to_checksum_address

    from backend.keys import next_order_key, public_key_bytes
    from backend.recover import recover
    from backend.release import verify_release_onchain
    from backend.runtime import demo_codes
    from contracts.artifacts import load
    from contracts.client import deploy_contract
    from contracts.coupons import Coupon
    from contracts.encoding import ZERO_ADDRESS, sku_id
    from contracts.order_rules import Terms, complete, tier_price

    name = "腾讯视频VIP月卡"
    story.chapter(f"9. {name} (Tencent Video VIP, one month) priced in a stablecoin (USDT)")
    token, res = deploy_contract(chain, admin, "TestToken", "Tether USD (development)", "USDT")
    story.tx(
        f"operator deploys a 6-decimal USDT stand-in at {token[:10]}… (anyone may mint it: "
        "the development faucet)",
        res,
        "deploy",
    )
    story.tx(
        "operator allows USDT as a payment token",
        escrow.set_token_allowed(admin, token, True),
        "admin",
    )
    vip = sku_id(name)
    story.tx(
        f"rights holder whitelists supplier A for {name}",
        escrow.authorize(admin, supplier.address, vip, keccak(text="licence: Tencent Video")),
        "admin",
    )
    usdt = chain.w3.eth.contract(address=to_checksum_address(token), abi=load("TestToken").abi)
    escrow.tx.send(supplier, usdt.functions.mint(supplier.address, 1_000 * USDT))
    escrow.approve_token(supplier, token, 200 * USDT)
    story.tx(
        "supplier A posts a 200 USDT bond",
        escrow.deposit_bond(supplier, 200 * USDT, token),
        "bond",
    )
    meta = {"name": name, "sku": name, "description": "腾讯视频VIP会员 1个月 · 自动发货"}
    vip_listing, res = escrow.create_listing(
        supplier,
        sku=vip,
        unit_price=VIP_PRICE,
        token=token,
        delivery_window=3600,
        dispute_window=86_400,
        bond_bps=2000,
        metadata_uri="data:application/json," + quote(json.dumps(meta, ensure_ascii=False)),
    )
    story.tx(f"supplier A opens listing {vip_listing} at 15 USDT per code", res, "listing")
    stock = 1_000
    csv = b"code\n" + b"\n".join(demo_codes(stock, start=2 * 10**6))
    upload = sup.upload_codes(vip_listing, csv)
    story.tx(
        f"vault commits {upload.count:,} {name} codes, root {upload.root[:10]}…",
        _receipt_result(escrow, upload.tx_hash or ""),
        "commitBatch",
    )
    wait_for(f"{name} on sale", lambda: api.listing(vip_listing).stock == stock or None)
    story.tx(
        f"supplier A promises on-chain delivery for listing {vip_listing}: each release travels "
        "in its delivery transaction, so the codes survive the platform",
        escrow.require_on_chain_release(supplier, vip_listing),
        "listing",
    )

    # A reseller (分站) sells it in its own shop: the supplier names what it receives, the shop
    # its own retail price; the order fixes every party's part at the purchase.
    story.tx(
        f"supplier A opens listing {vip_listing} to resellers at 13 USDT a code (代理价)",
        escrow.set_reseller_price(supplier, vip_listing, RESELLER_PRICE),
        "listing",
    )
    shop = chain.new_account(ether=1)
    story.tx(
        f"a reseller, {shop.address[:10]}…, puts it in its shop at 15 USDT (its link: "
        f"/#/s/{shop.address[:10]}…)",
        escrow.set_shop_price(shop, vip_listing, VIP_PRICE),
        "listing",
    )

    story.tx(
        f"supplier A sets a wholesale tier (批发价) on listing {vip_listing}: 5% off from "
        f"{WHOLESALE_FROM} codes, in every shop too",
        escrow.set_tiers(supplier, vip_listing, [(WHOLESALE_FROM, WHOLESALE_BPS)]),
        "listing",
    )

    def buy_in_shop(
        quantity: int, unit: int, funds: int, coupon: Coupon | None = None
    ) -> tuple[LocalAccount, PrivateKey, int, Order, TxResult]:
        """A new buyer, given `funds` from the faucet, pays `unit` a code for `quantity` codes
        in the shop with a fresh order key (and `coupon`, if given); its account, key, order
        id, order and receipt."""
        buyer = chain.new_account(ether=1)
        escrow.tx.send(buyer, usdt.functions.mint(buyer.address, funds))
        escrow.approve_token(buyer, token, unit * quantity)
        key, _nonce = next_order_key(escrow, buyer)
        escrow.tx.reset_nonce(buyer.address)
        oid, order, res = escrow.buy(
            buyer,
            vip_listing,
            quantity,
            max_unit_price=unit,
            buyer_pubkey=public_key_bytes(key),
            reseller=shop.address,
            value=0,
            coupon=coupon,
        )
        return buyer, key, oid, order, res

    quantity = STABLECOIN_QUANTITY
    buyer, key, oid, bought, res = buy_in_shop(quantity, VIP_PRICE, 100 * USDT)
    story.tx(
        f"a buyer pays 30 USDT for {quantity} {name} codes in the reseller's shop (the shop's "
        f"margin, {bought.reseller_cut / USDT:g} USDT, is fixed in the order)",
        res,
        "buy",
    )
    release = api.wait_release(oid, buyer, timeout=30, poll=0.005)
    verified = verify_release_onchain(release, key, escrow, res.block_number)
    order = _current_of(escrow, api, oid, buyer)  # delivered: its release was fetched
    before = {a: escrow.balance_of(a, token) for a in (supplier.address, shop.address)}
    fees_before = escrow.call("feesOf", token)
    story.tx(
        f"the buyer verifies {len(verified.codes)} codes against the chain and confirms",
        escrow.confirm(buyer, oid, order),
        "confirm",
    )
    paid = complete(Terms.of(order))
    credited = {a: escrow.balance_of(a, token) - b for a, b in before.items()}
    fee = escrow.call("feesOf", token) - fees_before
    if (credited[supplier.address], credited[shop.address], fee) != (
        paid.to_supplier,
        paid.commission,
        paid.fee,
    ):
        raise RuntimeError(f"order {oid} paid {credited} and fee {fee}, not {paid}")
    story.say(
        f"  the 30 USDT are split on-chain: supplier A {paid.to_supplier / USDT:g}, the shop "
        f"{paid.commission / USDT:g}, the platform's fee {paid.fee / USDT:g} (each bears its "
        "share of the fee)"
    )
    # A wholesale buyer in the same shop reaches the tier: the shop's price and the supplier's
    # reseller price are both 5% lower, so every part shrinks alike.
    unit = tier_price(VIP_PRICE, [(WHOLESALE_FROM, WHOLESALE_BPS)], WHOLESALE_FROM)
    wholesale, _, woid, wbought, wres = buy_in_shop(WHOLESALE_FROM, unit, unit * WHOLESALE_FROM)
    if wbought.amount != unit * WHOLESALE_FROM:
        raise RuntimeError(f"order {woid} paid {wbought.amount}, not the tier's {unit} a code")
    story.tx(
        f"a wholesale buyer pays {wbought.amount / USDT:g} USDT for {WHOLESALE_FROM} codes in "
        f"the shop ({unit / USDT:g} a code at the tier; the shop's margin "
        f"{wbought.reseller_cut / USDT:g} USDT, 5% below its plain margin too)",
        wres,
        "buy",
    )
    api.wait_release(woid, wholesale, timeout=30, poll=0.005)
    story.say(f"  its {WHOLESALE_FROM} codes are delivered on-chain like any order's")
    # A coupon (优惠券): supplier A signs it (no transaction); a buyer presents it in the shop.
    # An amount off comes out of the supplier's part, so the shop's margin stays.
    coupon = escrow.sign_coupon(
        supplier,
        Coupon(
            listing_id=vip_listing,
            sku=bytes(32),
            buyer=ZERO_ADDRESS,
            discount_bps=0,
            amount_off=COUPON_OFF,
            max_uses=100,
            expiry=chain.timestamp() + 7 * 86_400,
            id=1,
        ),
    )
    story.say(
        f"  supplier A signs a coupon (优惠券) of {COUPON_OFF / USDT:g} USDT off, 100 uses, a "
        f"week: no transaction; it travels in the shop's link "
        f"(/#/buy/{vip_listing}?ref={shop.address[:10]}…&coupon={coupon.text()[:12]}…)"
    )
    cunit = VIP_PRICE - COUPON_OFF
    _, _, coid, cbought, cres = buy_in_shop(1, cunit, cunit, coupon)
    if (cbought.amount, cbought.reseller_cut) != (cunit, VIP_PRICE - RESELLER_PRICE):
        raise RuntimeError(f"order {coid} paid {cbought.amount}, cut {cbought.reseller_cut}")
    story.tx(
        f"a buyer with the coupon pays {cbought.amount / USDT:g} USDT for a code in the shop: "
        f"the shop's margin stays {cbought.reseller_cut / USDT:g} USDT, supplier A gives the "
        f"{COUPON_OFF / USDT:g} off its part (coupon 1 used "
        f"{escrow.storage.coupon_uses(supplier.address, 1)} time)",
        cres,
        "buy",
    )
    # What `kameng recover` does: the chain alone (no API, no database) gives the codes back.
    recovery = recover(escrow, buyer, from_block=res.block_number)
    (found,) = recovery.orders
    if found.status != "recovered" or [c.code for c in found.codes] != [
        c.code for c in verified.codes
    ]:
        raise RuntimeError(f"order {oid} could not be recovered from the chain: {found.detail}")
    story.say(
        f"  with no backend at all, the buyer recovers its {len(found.codes)} codes from the "
        f"chain alone (kameng recover): delivered on-chain in {short(found.delivery_tx or '')}"
    )
    return (
        f"listing {vip_listing}: {name} at 15 USDT, {stock:,} codes, delivered on-chain; order "
        f"{oid}: {quantity} codes for 30 USDT in a reseller's shop, delivered, verified, "
        f"confirmed and recovered from the chain alone; the shop earned "
        f"{paid.commission / USDT:g} USDT; order {woid}: {WHOLESALE_FROM} codes at the "
        f"wholesale tier for {wbought.amount / USDT:g} USDT; order {coid}: a coupon's "
        f"{COUPON_OFF / USDT:g} USDT off, paid {cbought.amount / USDT:g} USDT"
    )


def _current(escrow: EscrowClient, api: KamengClient, p: Purchase) -> Order:
    """The order as stored on-chain, from the mirror."""
    return _current_of(escrow, api, p.order_id, p.buyer)


def _current_of(
    escrow: EscrowClient, api: KamengClient, order_id: int, buyer: LocalAccount
) -> Order:
    """Order `order_id` as stored on-chain, once the mirror has caught up with it."""
    from backend.cli.common import order_from_public

    def fresh() -> Order | None:
        order = order_from_public(api.order(order_id, buyer))
        return order if escrow.order_matches(order_id, order) else None

    return wait_for(f"order {order_id} in the mirror", fresh)


def _mirror_done(api: KamengClient, sup: KamengClient, victim: Purchase, n: int) -> bool:
    dash = sup.dashboard()
    done = sum(v for k, v in dash.orders_by_state.items() if k in ("completed", "resolved"))
    refunded = api.order(victim.order_id, victim.buyer).state == 5
    return done == n - 1 and refunded


def _summary(
    story: Story,
    api: KamengClient,
    sup: KamengClient,
    purchases: list[Purchase],
    verified_codes: int,
    listing_id: int,
    silent_listing: int,
    transcript: Path,
    heard: dict[str, int],
    stablecoin: str,
) -> None:
    dash = sup.dashboard()
    listing = api.listing(listing_id)
    silent = api.listing(silent_listing)
    latencies = sorted(p.latency_ms for p in purchases if p.latency_ms is not None)
    gas = story.gas_by_kind()
    elapsed = time.monotonic() - story.started

    console.print()
    table = Table("", "result", title="kameng demo: summary", title_justify="left")
    table.add_row(
        "orders",
        f"{len(purchases) + 1} by {len(purchases) + 1} buyers, "
        f"{sum(p.quantity for p in purchases) + STABLECOIN_QUANTITY} codes "
        f"(wholesale: {WHOLESALE} in one order; one order in USDT)",
    )
    kinds = [step["kind"] for step in story.steps]
    table.add_row(
        "outcomes",
        f"{kinds.count('confirm')} confirmed · {kinds.count('settle')} settled by the keeper "
        f"· {kinds.count('rule')} dispute ruled for the buyer · {kinds.count('refund')} "
        "refunded after a missed deadline",
    )
    table.add_row(
        "codes verified by buyers", f"{verified_codes} against commitments and roots on-chain"
    )
    table.add_row("in a stablecoin", stablecoin)
    if latencies:
        table.add_row(
            "payment → release delivered and fetchable",
            f"median {statistics.median(latencies):.0f} ms, "
            f"worst {latencies[-1]:.0f} ms (the brief's promise: one minute)",
        )
    table.add_row(
        "supplier A listing",
        f"{listing.committed} committed, {listing.sold} sold, "
        f"{listing.stock} left; record: {listing.supplier_record.orders_completed} "
        f"completed, {listing.supplier_record.disputes_lost} dispute lost",
    )
    table.add_row(
        "supplier B listing",
        f"{silent.sold} sold; record: "
        f"{silent.supplier_record.orders_refunded} refunded for non-delivery",
    )
    earned = sum(t.amount for t in dash.earned)
    bond = dash.bonds[0] if dash.bonds else None
    table.add_row(
        "supplier A money",
        f"earned {earned / ETH:.4f} ETH (after 2% fee), "
        f"withdrawn; bond {bond.free / ETH if bond else 0:.4f} ETH free, "
        f"{bond.reserved / ETH if bond else 0:.4f} reserved",
    )
    for kind in ("buy", "deliver", "confirm", "settle", "dispute", "rule", "refund", "commitBatch"):
        if kind in gas:
            values = gas[kind]
            per_order = ""
            if kind == "deliver":
                per_order = f" ({sum(values) / (len(purchases) - 1):,.0f} per order)"
            table.add_row(
                f"gas: {kind}",
                f"{statistics.mean(values):,.0f} avg over {len(values)} tx{per_order}",
            )
    table.add_row(
        "supplier A's webhook",
        f"{sum(heard.values())} signed notifications, every signature verified: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(heard.items())),
    )
    table.add_row("transactions", f"{len(story.steps)} (all hashes in {transcript})")
    table.add_row("wall time", f"{elapsed:.1f} s")
    console.print(table)
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text(
        json.dumps(
            {
                "steps": story.steps,
                "elapsed_s": round(elapsed, 2),
                "latency_ms": [round(x) for x in latencies],
            },
            indent=2,
        )
    )


def api_post_endpoint(base_url: str, account: LocalAccount, url: str) -> str:
    """Subscribe `account`'s webhook at `url` to every notification; return its secret."""
    from backend.client import KamengClient, answer_json

    client = KamengClient(base_url)
    client.sign_in(account)
    made = answer_json(
        client.request("POST", "/notifications/endpoints", json={"kind": "webhook", "target": url})
    )
    return str(made["secret"])


class WebhookInbox:
    """A webhook receiver on loopback that keeps what it is sent (the demo's supplier)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        """Wrap a running server (`start` makes one)."""
        self.server = server
        self.thread = thread

    @property
    def url(self) -> str:
        """Where it listens."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/kameng"

    @classmethod
    def start(cls) -> WebhookInbox:
        """Listen on a free loopback port, in a thread."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.received = received  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, name="demo-webhook", daemon=True)
        thread.start()
        return cls(server, thread)

    def verified(self, secret: str) -> dict[str, int]:
        """Messages received so far by type, each signature checked (Standard Webhooks).

        Raises:
            standardwebhooks.WebhookVerificationError: a signature does not verify.
        """
        from standardwebhooks import Webhook

        check = Webhook(secret)
        kinds: dict[str, int] = {}
        for headers, body in list(self.server.received):
            message = check.verify(body, headers)
            kinds[str(message["type"])] = kinds.get(str(message["type"]), 0) + 1
        return kinds

    def stop(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()
