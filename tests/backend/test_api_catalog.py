"""The catalog and the arbiter's queue, read from the mirror the real indexer writes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_utils import keccak

from backend.client import ApiError
from contracts.encoding import OrderState
from contracts.order_rules import Terms, complete
from tests.backend.api_helpers import Served, poll, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=3) as s:
        s.upload(40)
        yield s


def test_catalog_shows_live_stock_price_and_terms(served: Served) -> None:
    client = served.client()

    def stocked() -> object:
        rows = client.listings()
        return rows if rows and rows[0].committed >= 40 else None

    rows = poll("the listing's stock in the catalog", stocked)
    row = next(r for r in rows if r.listing_id == served.dev.listing_id)
    assert row.supplier == served.dev.supplier.address and row.unit_price == 10**16
    assert row.sku == "0x" + served.dev.sku.hex() and row.active
    sold_before = row.sold
    bought = served.buy(served.dev.buyers[0], 4)
    assert bought.order.quantity == 4

    def sold() -> object:
        listing = client.listing(served.dev.listing_id)
        return listing if listing.sold == sold_before + 4 else None

    listing = poll("the sale in the catalog", sold)
    assert listing.stock == listing.committed - listing.sold
    assert client.listings(sku="0x" + served.dev.sku.hex())[0].listing_id == served.dev.listing_id
    assert client.listings(supplier=served.dev.buyers[0].address) == []
    with pytest.raises(ApiError) as err:
        client.listing(987)
    assert err.value.status == 404


def test_supplier_record_counts_completed_orders_and_lost_disputes(served: Served) -> None:
    buyer, disputer = served.dev.buyers[1], served.dev.buyers[2]
    kept = served.buy(buyer, 1)
    lost = served.buy(disputer, 1)
    for b in (kept, lost):
        served.client(b.buyer).wait_release(b.order_id)
    served.escrow.confirm(buyer, kept.order_id, served.current(kept.order_id, buyer))
    order = served.current(lost.order_id, disputer)
    disputed, _ = served.escrow.dispute(
        disputer, lost.order_id, order, "ipfs://why", keccak(text="redeemed already")
    )
    judge = served.client(served.dev.arbiter)

    def queued() -> object:
        return [d for d in judge.disputes() if d.order_id == lost.order_id]

    (entry,) = poll("the dispute in the arbiter's queue", queued)
    assert entry.buyer == disputer.address and entry.supplier == served.dev.supplier.address
    assert entry.arbitration_deadline == disputed.deadline and not entry.overdue
    assert 0 < entry.seconds_left <= 7 * 24 * 3600
    assert entry.evidence_uri == "ipfs://why" and entry.amount == lost.order.amount
    assert entry.evidence and entry.evidence[0].party == disputer.address
    assert judge.order(lost.order_id).state == OrderState.DISPUTED  # arbiters read any order
    with pytest.raises(ApiError) as err:
        served.client(buyer).order(lost.order_id)
    assert err.value.status == 403
    served.escrow.rule(
        served.dev.arbiter, lost.order_id, disputed, buyer_bps=10_000, slash_bps=1000
    )
    client = served.client()

    def recorded() -> object:
        record = client.supplier_record(served.dev.supplier.address)
        return record if record.disputes_lost == 1 and record.orders_completed >= 1 else None

    record = poll("the supplier's record", recorded)
    assert record.disputes_total == 1
    assert client.listing(served.dev.listing_id).supplier_record == record
    assert [d.order_id for d in judge.disputes()] == []
    ruled = judge.disputes(include_ruled=True)
    assert ruled[0].ruled and ruled[0].buyer_bps == 10_000
    assert client.order(lost.order_id, disputer).state == OrderState.RESOLVED


def test_dispute_queue_is_oldest_first_and_for_arbiters_only(served: Served) -> None:
    first, second = served.dev.buyers[0], served.dev.buyers[1]
    a = served.buy(first, 1)
    b = served.buy(second, 1)
    for x in (a, b):
        served.client(x.buyer).wait_release(x.order_id)
    for x in (b, a):  # b's dispute is opened first
        order = served.current(x.order_id, x.buyer)
        served.escrow.dispute(x.buyer, x.order_id, order, "", keccak(text="bad"))
    judge = served.client(served.dev.arbiter)

    def both() -> object:
        queue = judge.disputes()
        return queue if {d.order_id for d in queue} >= {a.order_id, b.order_id} else None

    queue = poll("both disputes in the queue", both)
    ids = [d.order_id for d in queue]
    assert ids.index(b.order_id) < ids.index(a.order_id)
    assert [d.opened_at for d in queue] == sorted(d.opened_at for d in queue)
    with pytest.raises(ApiError) as err:
        served.client(first).disputes()
    assert err.value.status == 403 and "ARBITER_ROLE" in err.value.detail
    assert httpx.get(served.url + "/arbiter/disputes").status_code == 401


def test_me_names_roles(served: Served) -> None:
    assert served.client(served.dev.arbiter).me().is_arbiter
    me = served.client(served.dev.supplier).me()
    assert not me.is_arbiter and me.listings == 1


def test_health_reports_head_and_mirror(served: Served) -> None:
    served.wait_indexed()
    health = served.client().health()
    assert health.status == "ok" and health.lag_blocks == 0
    assert health.escrow == served.escrow.address
    info = served.client().chain_info()
    assert info.embedded and info.rpc_url and info.rpc_url.endswith("/rpc")


def test_a_resellers_shop_lists_its_listings_at_its_prices(served: Served) -> None:
    """``GET /shops/{address}``: the listings a reseller (分站) sells, each with its shop price and
    the listing's fields; one taken out (price 0) is not listed; a closed listing stays, no
    longer buyable; an order bought in the shop names the reseller and its cut."""
    from backend.keys import next_order_key, public_key_bytes

    escrow, dev = served.escrow, served.dev
    shop = served.runtime.chain.new_account()
    lid = dev.listing_id
    escrow.set_reseller_price(dev.supplier, lid, 7 * 10**15)
    escrow.set_shop_price(shop, lid, 9 * 10**15)
    other, _ = escrow.create_listing(dev.supplier, sku=dev.sku, unit_price=10**16)
    escrow.set_reseller_price(dev.supplier, other, 5 * 10**15)
    escrow.set_shop_price(shop, other, 6 * 10**15)
    escrow.set_shop_price(shop, other, 0)  # taken out again
    served.wait_indexed()

    answer = httpx.get(f"{served.url}/shops/{shop.address.lower()}")  # any case
    assert answer.status_code == 200, answer.text
    (entry,) = answer.json()
    assert (entry["listing_id"], entry["reseller"], entry["supplier"]) == (
        lid,
        shop.address,
        dev.supplier.address,
    )
    # Amounts travel as decimal strings, as in the catalog.
    assert (entry["shop_price"], entry["reseller_price"], entry["unit_price"]) == (
        str(9 * 10**15),
        str(7 * 10**15),
        str(10**16),
    )
    assert entry["buyable"] and entry["stock"] == entry["committed"] - entry["sold"] > 0
    assert served.client().listing(lid).reseller_price == 7 * 10**15
    assert httpx.get(f"{served.url}/shops/{dev.buyers[0].address}").json() == []

    for bad in ("0x1234", "not-an-address", "0x" + "g" * 40):
        refused = httpx.get(f"{served.url}/shops/{bad}")
        body = refused.json()
        assert (refused.status_code, body["code"]) == (422, "bad_value"), body
        assert "address must be a 0x-prefixed 20-byte hex address" in body["detail"]

    buyer = dev.buyers[0]
    key, _ = next_order_key(escrow, buyer)
    escrow.tx.reset_nonce(buyer.address)
    oid, order, _ = escrow.buy(
        buyer,
        lid,
        2,
        max_unit_price=9 * 10**15,
        buyer_pubkey=public_key_bytes(key),
        reseller=shop.address,
    )
    assert order.reseller_cut == 2 * (9 - 7) * 10**15
    served.current(oid, buyer)  # the mirror has it
    seen = served.client(buyer).order(oid)
    assert (seen.reseller, seen.reseller_cut, seen.amount) == (
        shop.address,
        order.reseller_cut,
        18 * 10**15,
    )
    raw = served.client(buyer).request("GET", f"/buyer/orders/{oid}").json()
    assert raw["reseller_cut"] == str(order.reseller_cut) and "referrer" not in raw

    escrow.set_reseller_price(dev.supplier, lid, 0)  # the supplier closes it to resellers
    served.wait_indexed()
    (closed,) = httpx.get(f"{served.url}/shops/{shop.address}").json()
    assert closed["reseller_price"] == "0" and closed["shop_price"] == str(9 * 10**15)
    assert not closed["buyable"]

    # The shop's sales: the order, its margin, and nothing credited while it is open ...
    sales = httpx.get(f"{served.url}/shops/{shop.address}/sales")
    assert sales.status_code == 200, sales.text
    (sale,) = sales.json()
    assert (sale["order_id"], sale["listing_id"], sale["quantity"]) == (str(oid), lid, 2)
    assert sale["state_name"] in ("paid", "delivered")  # the delivery agent may be done already
    assert (sale["reseller_cut"], sale["commission"]) == (str(order.reseller_cut), "0")
    # ... then what the escrow credited the shop once the buyer confirmed.
    served.client(buyer).wait_release(oid)
    delivered = served.current(oid, buyer)
    escrow.tx.reset_nonce(buyer.address)
    escrow.confirm(buyer, oid, delivered)
    served.wait_indexed()
    (done,) = httpx.get(f"{served.url}/shops/{shop.address}/sales").json()
    paid = complete(Terms.of(delivered))
    assert paid.commission == escrow.balance_of(shop.address) > 0
    assert (done["state_name"], done["commission"]) == ("completed", str(paid.commission))
    assert httpx.get(f"{served.url}/shops/{dev.buyers[0].address}/sales").json() == []
    refused = httpx.get(f"{served.url}/shops/0x1234/sales")
    assert (refused.status_code, refused.json()["code"]) == (422, "bad_value")


def test_a_reseller_names_its_shop_and_the_name_finds_it(served: Served) -> None:
    """``PUT /shop-names/{name}`` names the signed-in wallet's shop; ``GET /shop-names/{name}``
    finds the reseller behind a link; one name per shop, a taken or malformed name is refused
    with what to fix, and nothing changes."""
    alice, bob = served.dev.buyers[1], served.dev.buyers[2]
    named = served.client(alice).request("PUT", "/shop-names/xiaoming-games").json()
    assert named == {"name": "xiaoming-games", "reseller": alice.address}
    assert httpx.get(f"{served.url}/shop-names/xiaoming-games").json() == named
    by_address = httpx.get(f"{served.url}/shop-names", params={"reseller": alice.address.lower()})
    assert by_address.json() == [named]

    # Taken by another shop: 409, and the name stays its owner's.
    with pytest.raises(ApiError) as taken:
        served.client(bob).request("PUT", "/shop-names/xiaoming-games")
    assert (taken.value.status, taken.value.code) == (409, "shop_name_taken")
    assert "belongs to another shop" in str(taken.value)
    assert httpx.get(f"{served.url}/shop-names/xiaoming-games").json() == named

    # Malformed names: 422 with the rule, for reading and for claiming.
    for bad in ("ab", "-edge", "edge-", "Upper", "卡盟", "a" * 33, "under_score"):
        refused = httpx.get(f"{served.url}/shop-names/{bad}")
        assert (refused.status_code, refused.json()["code"]) == (422, "bad_shop_name"), bad
        assert "3 to 32 lowercase letters, digits and hyphens" in refused.json()["detail"]
        with pytest.raises(ApiError) as claimed:
            served.client(bob).request("PUT", f"/shop-names/{bad}")
        assert claimed.value.status == 422
    assert httpx.get(f"{served.url}/shop-names", params={"reseller": bob.address}).json() == []

    # A second name replaces the first: one name per shop, the old one free again.
    renamed = served.client(alice).request("PUT", "/shop-names/xm-2").json()
    assert renamed == {"name": "xm-2", "reseller": alice.address}
    gone = httpx.get(f"{served.url}/shop-names/xiaoming-games")
    assert (gone.status_code, gone.json()["code"]) == (404, "unknown_shop_name")
    assert served.client(bob).request("PUT", "/shop-names/xiaoming-games").json()["reseller"] == (
        bob.address
    )
    # Not signed in: 401.
    assert httpx.put(f"{served.url}/shop-names/free-name").status_code == 401


def test_volume_tiers_in_the_catalog_and_the_shops(served: Served) -> None:
    """A listing's volume tiers (批发价) as ``tiers``, smallest first, in the catalog, the
    listing's page and every shop that sells it; removed, an empty list."""
    escrow, dev = served.escrow, served.dev
    lid, _ = escrow.create_listing(dev.supplier, sku=dev.sku, unit_price=10**16)
    shop = served.runtime.chain.new_account()
    escrow.set_reseller_price(dev.supplier, lid, 8 * 10**15)
    escrow.set_shop_price(shop, lid, 9 * 10**15)
    escrow.set_tiers(dev.supplier, lid, [(10, 500), (100, 1_000)])
    served.wait_indexed()
    want = [{"min_quantity": 10, "discount_bps": 500}, {"min_quantity": 100, "discount_bps": 1000}]
    page = httpx.get(f"{served.url}/catalog/listings/{lid}").json()
    assert page["tiers"] == want
    catalog = httpx.get(f"{served.url}/catalog/listings").json()
    assert next(e for e in catalog if e["listing_id"] == lid)["tiers"] == want
    (entry,) = httpx.get(f"{served.url}/shops/{shop.address}").json()
    assert entry["tiers"] == want
    assert [(t.min_quantity, t.discount_bps) for t in served.client().listing(lid).tiers] == [
        (10, 500),
        (100, 1_000),
    ]
    # The plain listing has none; removing them empties the list.
    assert httpx.get(f"{served.url}/catalog/listings/{dev.listing_id}").json()["tiers"] == []
    escrow.set_tiers(dev.supplier, lid, [])
    served.wait_indexed()
    assert httpx.get(f"{served.url}/catalog/listings/{lid}").json()["tiers"] == []
