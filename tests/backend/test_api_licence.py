"""A rights holder revokes a supplier's licence for a product: the storefront's catalog stops
offering that supplier's listings of it at once (from the mirror), says why on the listing, and
offers them again when the licence is renewed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_utils import keccak

from tests.backend.api_helpers import Served, poll, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1) as s:
        s.upload(5)
        yield s


def listed(rows: list) -> list[int]:  # type: ignore[type-arg]
    return [r.listing_id for r in rows]


def test_a_revoked_licence_takes_the_listing_out_of_the_store(served: Served) -> None:
    client = served.client()
    lid, dev = served.dev.listing_id, served.dev
    poll("the listing in the catalog", lambda: lid in listed(client.listings()))
    assert client.listing(lid).licensed

    served.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, b"\x00" * 32)
    poll("the revocation in the mirror", lambda: not client.listing(lid).licensed)
    assert lid not in listed(client.listings())
    assert lid not in listed(client.listings(sku="0x" + dev.sku.hex()))
    revoked = client.listings(licence="revoked")
    assert listed(revoked) == [lid] and not revoked[0].licensed
    assert lid in listed(client.listings(licence="any"))
    assert lid in listed(client.listings(supplier=dev.supplier.address, licence="any"))

    served.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, keccak(text="renewed"))
    poll("the renewal in the mirror", lambda: client.listing(lid).licensed)
    assert lid in listed(client.listings())
    assert client.listings(licence="revoked") == []


def test_an_unknown_licence_filter_is_refused_with_the_choices(served: Served) -> None:
    answer = httpx.get(f"{served.url}/catalog/listings", params={"licence": "maybe"})
    assert answer.status_code == 422
    assert "licence" in answer.text and "in-force" in answer.text
