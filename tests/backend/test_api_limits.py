"""Hostile numbers and nesting get a 4xx that says what to fix, never a 500: every path and query
integer has a range it is checked against before SQL or the chain sees it, JSON bodies have a
nesting limit, and evidence additions for an unknown order are refused alike."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.api.deps import ORDER_ID_MAX, SQL_BIGINT_MAX
from backend.limits import MAX_JSON_DEPTH, RECURSION_LIMIT
from tests.backend.api_helpers import Served, database, serve

LISTING = (1, SQL_BIGINT_MAX)
ORDER = (0, ORDER_ID_MAX)
OFFSET = (0, SQL_BIGINT_MAX)
STATE = (0, 6)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with database(request.param) as url, serve(database_url=url, buyers=1, agent=False) as s:
        yield s


def _bearer(served: Served, who: str) -> dict[str, str]:
    client = served.client(getattr(served.dev, who))
    return {"Authorization": f"Bearer {client.token}"}


def test_integers_out_of_range_are_422_naming_the_range(served: Served) -> None:
    supplier = _bearer(served, "supplier")
    arbiter = _bearer(served, "arbiter")
    csv = {**supplier, "Content-Type": "text/csv"}
    cases: list[tuple[str, str, dict[str, str], tuple[int, int]]] = [
        ("GET", f"/catalog/listings/{2**63}", {}, LISTING),
        ("GET", f"/catalog/listings/{2**256}", {}, LISTING),
        ("GET", "/catalog/listings/0", {}, LISTING),
        ("GET", "/catalog/listings/1.5", {}, LISTING),
        ("GET", f"/catalog/listings?offset={2**63}", {}, OFFSET),
        ("GET", "/catalog/listings?offset=-1", {}, OFFSET),
        ("GET", "/catalog/listings?offset=" + "9" * 5000, {}, OFFSET),
        ("GET", "/catalog/listings?limit=501", {}, (1, 500)),
        ("GET", f"/buyer/orders?offset={2**63}", supplier, OFFSET),
        ("GET", f"/supplier/orders?offset={2**63}", supplier, OFFSET),
        ("GET", f"/buyer/orders?state={2**70}", supplier, STATE),
        ("GET", "/supplier/orders?state=1&state=-1", supplier, STATE),
        ("GET", "/supplier/orders?limit=1001", supplier, (1, 1000)),
        ("GET", f"/buyer/orders/{2**256}", supplier, ORDER),
        ("GET", f"/buyer/orders/{ORDER_ID_MAX + 1}/release", supplier, ORDER),
        ("GET", f"/evidence/orders/{2**256 - 1}", supplier, ORDER),
        ("POST", f"/supplier/listings/{2**256}/codes", csv, LISTING),
        ("POST", f"/supplier/listings/{2**63}/codes", csv, LISTING),
        ("GET", "/arbiter/disputes?limit=0", arbiter, (1, 1000)),
    ]
    for method, path, headers, (low, high) in cases:
        answer = httpx.request(method, served.url + path, headers=headers, content=b"KMG-1\n")
        assert answer.status_code == 422, (path[:80], answer.status_code, answer.text[:300])
        assert f"must be an integer from {low} to {high}" in answer.json()["detail"], path[:80]
    # The ends of each range reach the database and the chain, which answer them.
    ends: list[tuple[str, str, dict[str, str], int]] = [
        ("GET", f"/catalog/listings?offset={SQL_BIGINT_MAX}&limit=500", {}, 200),
        ("GET", f"/catalog/listings/{SQL_BIGINT_MAX}", {}, 404),
        ("GET", f"/buyer/orders?offset={SQL_BIGINT_MAX}&state=0&state=6", supplier, 200),
        ("GET", f"/supplier/orders?offset={SQL_BIGINT_MAX}&limit=1000", supplier, 200),
        ("GET", f"/buyer/orders/{ORDER_ID_MAX}", supplier, 404),
        ("POST", f"/supplier/listings/{SQL_BIGINT_MAX}/codes", csv, 404),
    ]
    for method, path, headers, status in ends:
        answer = httpx.request(method, served.url + path, headers=headers, content=b"KMG-1\n")
        assert answer.status_code == status, (path, answer.text[:300])
    assert httpx.get(served.url + "/health").status_code == 200


def _integer_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "integer":
            return option
        if option.get("type") == "array" and option["items"].get("type") == "integer":
            return dict(option["items"])
    return None


def test_every_path_and_query_integer_declares_its_range(served: Served) -> None:
    doc = httpx.get(served.url + "/openapi.json").json()
    seen = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                schema = _integer_schema(param["schema"])
                if param["in"] not in ("path", "query") or schema is None:
                    continue
                seen += 1
                where = f"{method} {path} {param['name']}"
                assert isinstance(schema.get("minimum"), int), where
                assert isinstance(schema.get("maximum"), int), where
                assert schema["maximum"] <= ORDER_ID_MAX, where
    assert seen >= 12


def test_evidence_additions_for_an_unknown_order_answer_404(
    served: Served,
) -> None:
    unknown = served.dev.listing_id << 32 | 4_000_000
    base = f"{served.url}/evidence/orders/{unknown}"
    supplier = _bearer(served, "supplier")
    secret = httpx.post(
        base + "/buyer-secret", headers=supplier, json={"order_secret": "0x" + "11" * 32}
    )
    from_vault = httpx.post(base + "/supplier-codes", headers=supplier, json={"from_vault": True})
    listed = httpx.post(
        base + "/supplier-codes",
        headers=supplier,
        json={"codes": [{"index": 4_000_000, "salt": "0x" + "22" * 32, "code": "S01HLTE="}]},
    )
    assert secret.status_code == 404 and f"unknown order {unknown}" in secret.json()["detail"]
    for answer in (from_vault, listed):
        assert (answer.status_code, answer.json()) == (404, secret.json())


def _nested(depth: int, core: str = "0") -> str:
    return "[" * depth + core + "]" * depth


def test_json_nested_deeper_than_the_limit_is_refused_with_422(served: Served) -> None:
    limit = f"at most {MAX_JSON_DEPTH} levels are accepted"
    for depth in (MAX_JSON_DEPTH + 1, 900):
        deep = _nested(depth).encode()
        sent = [
            ("/auth/verify", deep, {"Content-Type": "application/json"}),
            ("/auth/nonce", deep, {}),  # no Content-Type: FastAPI would read it as JSON
            ("/rpc", deep, {"Content-Type": "application/json"}),
            (
                "/evidence/verify",
                json.dumps({"document": _nested(depth)}).encode(),
                {"Content-Type": "application/problem+json"},
            ),
        ]
        for path, body, headers in sent:
            answer = httpx.post(served.url + path, content=body, headers=headers, timeout=60)
            assert answer.status_code == 422, (path, depth, answer.status_code, answer.text[:200])
            detail = answer.json()["detail"]
            assert f"{depth} levels deep" in detail and limit in detail, (path, detail)
    # At the limit, the request is answered as before.
    call = {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}
    # Levels: the batch, a request object, its params, then the nested arrays.
    deep_call = {**call, "id": 8, "params": [json.loads(_nested(MAX_JSON_DEPTH - 4))]}
    batch = [call, deep_call]
    answer = httpx.post(served.url + "/rpc", json=batch)
    assert answer.status_code == 200
    assert answer.json()[0] == {
        "jsonrpc": "2.0",
        "id": 7,
        "result": hex(served.runtime.chain.chain_id),
    }
    # A CSV upload is no JSON: its brackets are not counted.
    csv = b"\n".join(b"KMG-" + b"[" * 100 + str(i).encode() for i in range(3))
    answer = httpx.post(
        f"{served.url}/supplier/listings/{served.dev.listing_id}/codes",
        content=csv,
        headers={**_bearer(served, "supplier"), "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200 and answer.json()["count"] == 3, answer.text


def test_building_the_app_sets_back_a_recursion_limit_a_dependency_raised(
    served: Served,
) -> None:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # what importing py_ecc does to the process
    try:
        served.runtime.app()
        assert sys.getrecursionlimit() == RECURSION_LIMIT
    finally:
        sys.setrecursionlimit(before)
