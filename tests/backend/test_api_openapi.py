"""The OpenAPI document is complete: every route has a typed success answer and documents its
errors, and the routes the issue names exist."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.backend.api_helpers import Served, serve

EXPECTED = {
    ("post", "/auth/nonce"),
    ("post", "/auth/verify"),
    ("get", "/auth/me"),
    ("get", "/catalog/listings"),
    ("get", "/catalog/listings/{listing_id}"),
    ("get", "/catalog/suppliers/{address}"),
    ("get", "/shops/{address}"),
    ("get", "/buyer/orders"),
    ("get", "/buyer/orders/{order_id}"),
    ("get", "/buyer/orders/{order_id}/release"),
    ("get", "/supplier/dashboard"),
    ("get", "/supplier/orders"),
    ("post", "/supplier/listings/{listing_id}/codes"),
    ("get", "/arbiter/disputes"),
    ("get", "/health"),
    ("get", "/chain"),
    ("post", "/rpc"),
}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1, agent=False) as s:
        yield s


def test_every_route_has_a_response_schema_and_documented_errors(served: Served) -> None:
    doc = httpx.get(served.url + "/openapi.json").json()
    routes = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert routes >= EXPECTED
    for path, item in doc["paths"].items():
        for method, op in item.items():
            ok = op["responses"]["200"]["content"]
            schema = next(iter(ok.values()))["schema"]
            assert schema, f"{method} {path} has no response schema"
            assert op.get("summary") and op.get("description"), f"{method} {path} is undocumented"
            if path not in ("/chain", "/rpc", "/catalog/listings/{listing_id}"):
                errors = {c for c in op["responses"] if c.startswith(("4", "5"))}
                assert errors, f"{method} {path} documents no error"
    upload = doc["paths"]["/supplier/listings/{listing_id}/codes"]["post"]
    assert "text/csv" in upload["requestBody"]["content"]
    assert {"413", "415", "422"} <= set(upload["responses"])
    wei = doc["components"]["schemas"]["ListingPublic"]["properties"]["unit_price"]
    assert wei["type"] == "string"
