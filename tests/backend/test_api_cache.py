"""The API's caching rules (`backend.api.cache`): the catalog answered from memory while the
mirror stands still and never once it has moved; what each answer lets caches keep."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.api.cache import CacheRules
from tests.backend.api_helpers import Served, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1) as s:
        s.upload(10)
        s.wait_indexed()
        yield s


def rules(served: Served) -> CacheRules:
    """The running app's `CacheRules` middleware."""
    server = served.runtime.server
    assert server is not None
    layer: Any = server.config.loaded_app
    while not isinstance(layer, CacheRules):
        layer = getattr(layer, "middleware_stack", None) or layer.app
    return layer


def test_catalog_from_memory_until_the_mirror_moves(served: Served) -> None:
    http = httpx.Client(base_url=served.url)
    path = f"/catalog/listings/{served.dev.listing_id}"
    first = http.get(path)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=1"
    cache = rules(served)
    hits = cache.hits
    again = http.get(path)
    assert again.content == first.content and cache.hits == hits + 1
    assert again.headers["cache-control"] == "public, max-age=1"
    # A sale moves the mirror: the first answer after it is indexed shows it, with no retry.
    sold = first.json()["sold"]
    served.buy(served.dev.buyers[0], 2)
    served.wait_indexed()
    after = http.get(path).json()
    assert after["sold"] == sold + 2 and after["stock"] == first.json()["stock"] - 2
    assert [r["sold"] for r in http.get("/catalog/listings").json()] == [sold + 2]
    # Errors are never stored: an unknown listing stays unknown, and is answered by the route.
    misses = cache.misses
    assert http.get("/catalog/listings/987").status_code == 404
    assert http.get("/catalog/listings/987").status_code == 404
    assert cache.misses == misses + 2
    # A reseller's shop is catalog listings at the shop's prices: kept the same way, and a
    # price it sets shows in the first answer after the mirror has it.
    reseller = served.runtime.chain.new_account(ether=1)
    shop = f"/shops/{reseller.address}"
    assert http.get(shop).json() == [] and http.get(shop).headers["cache-control"] == (
        "public, max-age=1"
    )
    hits = cache.hits
    assert http.get(shop).json() == [] and cache.hits == hits + 1
    price = int(first.json()["unit_price"])
    served.escrow.set_reseller_price(served.dev.supplier, served.dev.listing_id, price)
    served.escrow.set_shop_price(reseller, served.dev.listing_id, price + 1)
    served.wait_indexed()
    assert [int(x["shop_price"]) for x in http.get(shop).json()] == [price + 1]
    # /chain is the server's configuration: kept, public.
    chain = http.get("/chain")
    assert chain.headers["cache-control"] == "public, max-age=1"
    assert http.get("/chain").content == chain.content


def test_what_a_wallet_reads_is_never_stored(served: Served) -> None:
    buyer = served.dev.buyers[0]
    bought = served.buy(buyer, 1)
    client = served.client(buyer)
    client.wait_release(bought.order_id)
    headers = {"Authorization": f"Bearer {client.token}"}
    http = httpx.Client(base_url=served.url, headers=headers)
    for path in (
        "/buyer/orders",
        f"/buyer/orders/{bought.order_id}",
        f"/buyer/orders/{bought.order_id}/release",
        "/supplier/dashboard",
        "/auth/me",
    ):
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["cache-control"] == "private, no-store", path
    # refusals too, and POSTs of the session
    assert httpx.get(served.url + "/buyer/orders").headers["cache-control"] == "private, no-store"
    nonce = httpx.post(served.url + "/auth/nonce")
    assert nonce.headers["cache-control"] == "private, no-store"
