"""`kameng supplier ...` and `kameng demo` end to end."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from backend.cli import app
from bench.world import demo_codes
from tests.backend.api_helpers import Served, poll, serve

runner = CliRunner()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1) as s:
        yield s


def kameng(
    served: Served, account: LocalAccount, *args: str, tmp: Path, input: str | None = None
) -> tuple[int, str]:
    key = tmp / "supplier.key"
    key.write_text("0x" + bytes(account.key).hex())
    result = runner.invoke(
        app,
        ["supplier", *args, "--api", served.url, "--key-file", str(key)],
        env={"COLUMNS": "200"},
        input=input,
    )
    return result.exit_code, " ".join(result.output.split())


def test_upload_shows_progress_and_commits(served: Served, tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_bytes(b"code,expires,note\n" + b"\n".join(c + b",,lot 1" for c in demo_codes(1500)))
    code, out = kameng(
        served, served.dev.supplier, "upload", str(served.dev.listing_id), str(csv), tmp=tmp_path
    )
    assert code == 0, out
    assert "1500 codes stored and committed" in out and "committed" in out
    assert "1500/1500" in out  # the progress bar's last state
    assert "KMG-" not in out


def test_rejected_upload_lists_the_lines(served: Served, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_bytes(b"NEW-CODE-1\n\xff\xfe-not-utf8\nNEW-CODE-1\n")
    code, out = kameng(
        served, served.dev.supplier, "upload", str(served.dev.listing_id), str(csv), tmp=tmp_path
    )
    assert code == 1, out
    assert "line 2:" in out and "line 3:" in out and "nothing stored" in out
    assert "KMG-" not in out and "NEW-CODE-1" not in out


def test_dashboard_and_bond(served: Served, tmp_path: Path) -> None:
    code, out = kameng(served, served.dev.supplier, "bond", "deposit", str(10**18), tmp=tmp_path)
    assert code == 0 and "deposited" in out, out
    code, out = kameng(served, served.dev.supplier, "dashboard", tmp=tmp_path)
    assert code == 0, out
    assert f"supplier {served.dev.supplier.address}" in out and "bond" in out


def test_serve_style_dev_accounts_drive_the_cli(served: Served, tmp_path: Path) -> None:
    served.runtime.url = served.url
    path = served.runtime.write_dev_accounts(tmp_path / "dev.json")
    data = json.loads(path.read_text())
    assert data["supplier"]["address"] == served.dev.supplier.address
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_settle_now_pays_the_supplier_for_orders_past_their_window(
    served: Served, tmp_path: Path
) -> None:
    from contracts.encoding import OrderState
    from tests.backend.api_helpers import poll

    code, out = kameng(served, served.dev.supplier, "settle", tmp=tmp_path)
    assert code == 0 and "nothing to settle" in out, out
    served.upload(2, start=5000)
    buyer = served.dev.buyers[0]
    bought = [served.buy(buyer, 1) for _ in range(2)]
    orders = [
        poll(
            "delivered",
            lambda b=b: (
                (o := served.current(b.order_id, buyer)).state == OrderState.DELIVERED and o
            ),
        )
        for b in bought
    ]
    served.runtime.chain.travel_to(max(o.deadline for o in orders) + 1)
    served.wait_indexed()
    code, out = kameng(served, served.dev.supplier, "dashboard", tmp=tmp_path)
    assert code == 0 and "due now" in out and "(2: `kameng supplier settle`" in out, out
    code, out = kameng(served, served.dev.supplier, "settle", tmp=tmp_path)
    assert code == 0 and "settled 2 order(s)" in out, out
    served.wait_indexed()
    for b in bought:
        assert served.client().order(b.order_id, buyer).state == OrderState.COMPLETED
    code, out = kameng(served, served.dev.supplier, "settle", tmp=tmp_path)
    assert code == 0 and "nothing to settle" in out, out


def test_on_chain_delivery_is_confirmed_one_way_and_shown(served: Served, tmp_path: Path) -> None:
    """`kameng supplier on-chain`: asks first (one way, 32 codes), sends requireOnChainRelease,
    refuses unknown and other suppliers' listings in one line; the catalog and the dashboard
    show the delivery mode."""
    supplier, buyer = served.dev.supplier, served.dev.buyers[0]
    sku = "0x" + served.dev.sku.hex()
    code, out = kameng(served, supplier, "listing", "--sku", sku, "--price", "1000", tmp=tmp_path)
    assert code == 0, out
    lid = int(re.search(r"listing (\d+) opened", out)[1])  # type: ignore[index]
    code, out = kameng(served, supplier, "on-chain", str(lid), tmp=tmp_path, input="n\n")
    assert code == 1 and "one way" in out and "at most 32 codes" in out, out
    assert "nothing sent" in out and served.escrow.listing(lid)["on_chain_from"] == 0
    code, out = kameng(served, supplier, "on-chain", str(lid), "--yes", tmp=tmp_path)
    assert code == 0 and f"listing {lid} delivers on-chain from code index 0 on" in out, out
    assert served.escrow.listing(lid)["on_chain_from"] == 1
    code, out = kameng(served, supplier, "on-chain", str(lid), "--yes", tmp=tmp_path)
    assert code == 0 and "already delivers on-chain" in out and "nothing sent" in out, out
    for account, listing, expected in (
        (supplier, "9999", "error: unknown listing 9999"),
        (buyer, str(lid), f"error: listing {lid} belongs to {supplier.address}, not to you"),
    ):
        code, out = kameng(served, account, "on-chain", listing, "--yes", tmp=tmp_path)
        assert code == 2 and out.startswith(expected) and out.count("error:") == 1, out
    assert served.escrow.listing(served.dev.listing_id)["on_chain_from"] == 0
    served.wait_indexed()
    catalog = served.client()
    on, off = catalog.listing(lid), catalog.listing(served.dev.listing_id)
    assert (on.on_chain_from, on.on_chain_release, on.max_quantity_per_order) == (1, True, 32)
    assert (off.on_chain_from, off.on_chain_release, off.max_quantity_per_order) == (0, False, None)
    raw = httpx.get(f"{served.url}/catalog/listings/{lid}").json()
    assert (raw["on_chain_from"], raw["on_chain_release"], raw["max_quantity_per_order"]) == (
        1,
        True,
        32,
    )
    schemas = httpx.get(f"{served.url}/openapi.json").json()["components"]["schemas"]
    assert schemas["OrderPublic"]["properties"]["release_on_chain"]["type"] == "boolean"
    assert "on_chain_release" in schemas["ListingStockPublic"]["properties"]
    code, out = kameng(served, supplier, "dashboard", tmp=tmp_path)
    # (a narrow terminal wraps the cell "on-chain from #0" over two lines)
    assert code == 0 and "on-chain" in out and "from #0" in out and "off-chain" in out, out


def test_volume_tiers_are_checked_set_shown_and_removed(served: Served, tmp_path: Path) -> None:
    """`supplier tiers LISTING 10:5 100:10`: a malformed or refused list sends nothing (exit 2,
    saying what to fix); a good one lands on-chain and is shown with its prices; none removes."""
    escrow, dev = served.escrow, served.dev
    escrow.tx.reset_nonce(dev.supplier.address)  # earlier tests sent from it through the CLI
    lid, _ = escrow.create_listing(dev.supplier, sku=dev.sku, unit_price=10**16)
    w3 = served.runtime.chain.w3
    sent = w3.eth.get_transaction_count(dev.supplier.address)
    for args, says in (
        (["10"], "tier '10' is not QUANTITY:PERCENT"),
        (["10:abc"], "tier '10:abc' is not QUANTITY:PERCENT"),
        (["10:5.125"], "percent to two decimals"),
        (["1:5"], "tier 1: its quantity (1) must be above 1"),
        (["10:5", "5:10"], "tier 2: its quantity (5) must be above 10"),
        (["10:5", "20:5"], "tier 2: its discount (5%) must be above 5%"),
        (["10:100"], "and below 100%"),
        (["2:1", "3:2", "4:3", "5:4"], "at most 3 tiers over the base price, not 4"),
    ):
        code, out = kameng(served, dev.supplier, "tiers", str(lid), *args, tmp=tmp_path)
        assert code == 2 and says in out and "nothing sent" in out, out
    stranger = served.runtime.chain.new_account(ether=1)
    code, out = kameng(served, stranger, "tiers", str(lid), "10:5", tmp=tmp_path)
    assert code == 2 and f"listing {lid} belongs to {dev.supplier.address}" in out, out
    # The same ownership check as `on-chain` and `close` (which now also names an unknown one).
    for command in (["tiers", "9999", "10:5"], ["close", "9999"]):
        code, out = kameng(served, dev.supplier, *command, tmp=tmp_path)
        assert code == 2 and "unknown listing 9999" in out, out
    assert w3.eth.get_transaction_count(dev.supplier.address) == sent
    code, out = kameng(served, dev.supplier, "tiers", str(lid), "10:5", "100:7.5", tmp=tmp_path)
    assert code == 0 and "volume tiers set" in out, out
    assert f"│ 10 │ 5% │ {95 * 10**14} │" in out and f"│ 100 │ 7.5% │ {925 * 10**13} │" in out, out
    assert escrow.storage.tiers(lid) == [(10, 500), (100, 750)]
    code, out = kameng(served, dev.supplier, "tiers", str(lid), tmp=tmp_path)
    assert code == 0 and f"listing {lid} has no volume tiers now" in out, out
    assert escrow.storage.tiers(lid) == []


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    transcript = tmp_path / "t.json"
    result = runner.invoke(
        app,
        ["demo", "--codes", "150", "--buyers", "6", "--transcript", str(transcript)],
        env={"COLUMNS": "200"},
    )
    # Table borders out, so a cell wrapped over two lines reads as one phrase.
    out = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 0, out
    for chapter in (
        "1. Deploy",
        "2. Supplier A bonds and uploads 150 codes",
        "3. 6 buyers pay",
        "4. The delivery agent",
        "5. Buyers fetch, verify",
        "6. A dispute",
        "7. Supplier B misses",
        "8. Nobody clicks: the keeper settles",
        "9. 腾讯视频VIP月卡",
        "summary",
    ):
        assert chapter in out, chapter
    steps = json.loads(transcript.read_text())["steps"]
    kinds = [s["kind"] for s in steps]
    # 6 buyers: one disputes, one buys from the silent supplier, one never confirms (the keeper
    # settles its order after the dispute window), the other 3 confirm; and the stablecoin
    # chapter's buyer confirms too.
    counts = [kinds.count(k) for k in ("confirm", "settle", "rule", "refund")]
    assert counts == [4, 1, 1, 1], out
    assert "7 by 7 buyers" in out and "one order in USDT" in out
    assert "2 codes for 30 USDT in a reseller's shop, delivered, verified, confirmed" in out
    # The shop's margin: (15 - 13) x 2 = 4 USDT, less its 2% share of the fee: 3.92.
    assert "recovered from the chain alone; the shop earned 3.92 USDT" in out
    # The wholesale tier: 10 codes at 15 less 5%, 14.25 each; the shop's margin 5% lower too.
    assert "10 codes at the wholesale tier for 142.5 USDT" in out
    assert "the shop's margin 19 USDT" in out
    # A coupon of 1 USDT off comes out of the supplier's part: the shop's margin stays 2.
    assert "a buyer with the coupon pays 14 USDT for a code in the shop" in out
    assert "the shop's margin stays 2 USDT" in out and "coupon 1 used 1 time" in out
    assert "a coupon's 1 USDT off, paid 14 USDT" in out
    assert "confirmed" in out and "dispute ruled for the buyer" in out
    assert "1 settled by the keeper" in out and "nobody clicked" in out
    # The supplier's webhook heard of each of its 5 paid orders, every signature verified.
    assert "signed notifications, every signature verified" in out and "order.paid 5" in out
    assert "order.completed 4" in out
    assert {s["kind"] for s in steps} >= {
        "deploy",
        "buy",
        "deliver",
        "confirm",
        "settle",
        "dispute",
        "rule",
        "refund",
        "commitBatch",
    }
    assert all(s["tx"].startswith("0x") and len(s["tx"]) == 66 and s["gas"] > 0 for s in steps)


def test_a_supplier_keeps_its_key_and_leaves(served: Served, tmp_path: Path) -> None:
    """Issue 14: the backend holds no key of this supplier; its own key (here a key file)
    commits its batch. It then leaves: listings closed, earnings and free bond withdrawn; the
    order in flight still finishes, and a second `leave` takes the rest."""
    from eth_utils import keccak

    from contracts.encoding import OrderState
    from contracts.errors import ContractRevertError
    from tests.backend.api_helpers import poll

    escrow, dev = served.escrow, served.dev
    own = served.runtime.chain.new_account(ether=100)
    escrow.authorize(dev.admin, own.address, dev.sku, keccak(text="licence: leaver"))
    escrow.deposit_bond(own, 10**18)
    listing, _ = escrow.create_listing(own, sku=dev.sku, unit_price=10**16)
    escrow.set_delivery_key(own, dev.delivery.address)  # the platform's agent accepts it
    assert own.address not in {s.address for s in served.runtime.suppliers}
    served.wait_indexed()
    csv = tmp_path / "mine.csv"
    csv.write_bytes(b"\n".join(demo_codes(3, 70_000)))
    code, out = kameng(served, own, "upload", str(listing), str(csv), tmp=tmp_path)
    assert code == 0 and "your key stays here" in out and "(committed)" in out, out

    buyer = dev.buyers[0]
    bought = served.buy(buyer, 1, listing_id=listing)
    order = poll(
        "delivered",
        lambda: (o := served.current(bought.order_id, buyer)).state == OrderState.DELIVERED and o,
    )
    code, out = kameng(served, own, "leave", tmp=tmp_path)
    assert code == 0 and "1 listing(s) closed" in out and "still backs orders in flight" in out
    assert not escrow.listing(listing)["active"]
    assert escrow.bond_of(own.address)[0] == 0  # the free bond came back
    with pytest.raises(ContractRevertError):
        served.buy(buyer, 1, listing_id=listing)  # nothing of it is on sale
    escrow.tx.reset_nonce(buyer.address)
    escrow.confirm(buyer, bought.order_id, order)  # the order in flight finishes
    code, out = kameng(served, own, "leave", tmp=tmp_path)
    assert code == 0 and "0 listing(s) closed" in out and "withdrew" in out, out
    assert "nothing left in the escrow" in out, out
    assert escrow.balance_of(own.address) == 0 and escrow.bond_of(own.address) == (0, 0)


def test_a_listing_priced_in_a_stablecoin(served: Served, tmp_path: Path) -> None:
    """Issue 15: a supplier bonds in an allowed 6-decimal ERC-20 and lists in it, from the CLI;
    amounts read in the token's own units."""
    from contracts.artifacts import load
    from contracts.client import deploy_contract

    escrow, dev = served.escrow, served.dev
    address, _ = deploy_contract(served.runtime.chain, dev.admin, "TestToken", "Tether USD", "USDT")
    token = served.runtime.chain.w3.eth.contract(address=address, abi=load("TestToken").abi)
    escrow.tx.send(dev.admin, token.functions.mint(dev.supplier.address, 500 * 10**6))
    code, out = kameng(served, dev.supplier, "bond", "deposit", str(100 * 10**6),
                       "--token", address, tmp=tmp_path)  # fmt: skip
    assert code == 1 and "EscrowTokenNotAllowed" in out, out  # the operator allows tokens
    allowance = token.functions.allowance(dev.supplier.address, escrow.address).call()
    assert allowance == 0  # refused before anything was approved
    assert address not in httpx.get(f"{served.url}/catalog/tokens").json()
    escrow.set_token_allowed(dev.admin, address, True)
    poll(
        "the token in the catalog",
        lambda: address in httpx.get(f"{served.url}/catalog/tokens").json(),
    )
    code, out = kameng(served, dev.supplier, "bond", "deposit", str(100 * 10**6),
                       "--token", address, tmp=tmp_path)  # fmt: skip
    assert code == 0 and "deposited 100 USDT" in out, out
    assert escrow.bond_of(dev.supplier.address, address) == (100 * 10**6, 0)
    code, out = kameng(served, dev.supplier, "listing", "--sku", "demo-gift-card-10",
                       "--price", "1990000", "--token", address, tmp=tmp_path)  # fmt: skip
    assert code == 0 and "unit price 1.99 USDT" in out, out
    listing_id = int(escrow.call("listingCount"))
    assert escrow.listing(listing_id)["token"] == address
