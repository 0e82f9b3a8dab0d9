"""The supplier's side of the API: dashboard data, and CSV uploads that are either stored and
committed whole or refused with a 4xx naming the offending lines, with nothing half-written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from backend.client import ApiError
from contracts import order_rules as rules
from contracts.encoding import OrderState
from contracts.testing import demo_codes
from tests.backend.api_helpers import Served, backend_settings, database, poll, serve

CAP = 64 * 1024


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with (
        database(request.param) as url,
        serve(backend_settings(max_upload_bytes=CAP), database_url=url, buyers=2) as s,
    ):
        yield s


def _stock(served: Served) -> tuple[int, int]:
    """(codes committed on-chain, codes in the vault) of the dev listing."""
    committed = served.escrow.call("getListing", served.dev.listing_id)[1]
    dash = served.client(served.dev.supplier).dashboard()
    row = next(r for r in dash.listings if r.listing_id == served.dev.listing_id)
    return int(committed), int(row.vault_codes or 0)


def test_upload_streams_progress_and_commits_the_batch(served: Served) -> None:
    before = _stock(served)
    seen: list[tuple[int, int]] = []
    data = b"code,expires,note\n" + b"".join(
        c + b",2030-01-01,lot\n" for c in demo_codes(500, 10_000)
    )
    result = served.client(served.dev.supplier).upload_codes(
        served.dev.listing_id, data, progress=lambda d, t: seen.append((d, t))
    )
    assert result.state == "committed" and result.count == 500
    assert result.first_index == before[0]
    assert seen and seen[-1] == (500, 500)
    root, first, count = served.escrow.batch(served.dev.listing_id, result.batch_index or 0)
    assert ("0x" + root.hex(), first, count) == (result.root, result.first_index, 500)
    assert _stock(served) == (before[0] + 500, before[1] + 500)


def test_upload_answers_plain_json_without_ndjson(served: Served) -> None:
    client = served.client(served.dev.supplier)
    response = httpx.post(
        f"{served.url}/supplier/listings/{served.dev.listing_id}/codes",
        content=b"\n".join(demo_codes(5, 20_000)),
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "text/csv"},
    )
    assert response.status_code == 200 and response.json()["count"] == 5


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        (b"", 0, "empty"),
        (b"GOOD-CODE-000001\n\xff\xfe\xfd-bad-utf8\n", 2, "UTF-8"),
        (b"OK-CODE-1\n" + b"X" * 300 + b"\n", 2, "256"),
        (b"DUP-CODE-1\nDUP-CODE-2\nDUP-CODE-1\n", 3, "duplicate"),
    ],
    ids=["empty", "bad-encoding", "over-long", "duplicate-in-file"],
)
def test_bad_csv_is_422_naming_lines_and_stores_nothing(
    served: Served, body: bytes, line: int, reason: str
) -> None:
    before = _stock(served)
    with pytest.raises(ApiError) as err:
        served.client(served.dev.supplier).upload_codes(served.dev.listing_id, body)
    assert err.value.status == 422
    assert any(ln == line and reason.lower() in why.lower() for ln, why in err.value.errors), (
        err.value.errors
    )
    assert _stock(served) == before


def test_duplicates_of_earlier_stock_are_422_with_their_lines(served: Served) -> None:
    served.upload(10, start=30_000)
    before = _stock(served)
    again = b"\n".join([b"FRESH-CODE-1", *demo_codes(2, 30_000), b"FRESH-CODE-2"])
    with pytest.raises(ApiError) as err:
        served.client(served.dev.supplier).upload_codes(served.dev.listing_id, again)
    assert err.value.status == 422
    assert [ln for ln, _ in err.value.errors] == [2, 3]
    assert "KMG-" not in err.value.detail  # no plaintext code in the answer
    assert _stock(served) == before


def test_oversized_csv_is_413_and_stores_nothing(served: Served) -> None:
    before = _stock(served)
    big = b"\n".join(demo_codes(4000, 40_000))
    assert len(big) > CAP
    with pytest.raises(ApiError) as err:
        served.client(served.dev.supplier).upload_codes(served.dev.listing_id, big)
    assert err.value.status == 413 and f"{CAP}-byte limit" in err.value.detail
    assert _stock(served) == before


def test_upload_refusals_say_what_to_fix(served: Served) -> None:
    supplier = served.client(served.dev.supplier)
    headers = {"Authorization": f"Bearer {supplier.token}"}
    url = f"{served.url}/supplier/listings/{served.dev.listing_id}/codes"
    response = httpx.post(url, files={"file": ("c.csv", b"A-CODE-1\n")}, headers=headers)
    assert response.status_code == 415 and "text/csv" in response.json()["detail"]
    response = httpx.post(
        f"{served.url}/supplier/listings/999/codes",
        content=b"A-CODE-2\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 404
    stranger = served.client(served.dev.buyers[0])
    with pytest.raises(ApiError) as err:
        stranger.upload_codes(served.dev.listing_id, b"A-CODE-3\n")
    assert err.value.status == 403 and "no signing key" in err.value.detail
    response = httpx.post(url, content=b"A-CODE-4\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 401


def test_dashboard_shows_orders_bond_escrow_settlements_and_stock(served: Served) -> None:
    served.upload(20, start=50_000)
    buyer = served.dev.buyers[0]
    first = served.buy(buyer, 2)
    second = served.buy(buyer, 1)
    client = served.client(buyer)
    client.wait_release(first.order_id)
    client.wait_release(second.order_id)

    def delivered() -> bool:
        return all(client.order(b.order_id).state == OrderState.DELIVERED for b in (first, second))

    poll("both deliveries in the mirror", delivered)
    served.escrow.confirm(buyer, first.order_id, served.current(first.order_id, buyer))
    supplier = served.client(served.dev.supplier)

    def settled() -> object:
        dash = supplier.dashboard()
        return dash if dash.recent_settlements else None

    dash = poll("the settlement in the dashboard", settled)
    assert dash.supplier == served.dev.supplier.address
    assert dash.orders_by_state.get("completed", 0) >= 1
    assert dash.orders_by_state.get("delivered", 0) >= 1
    assert dash.bonds[0].reserved > 0 and dash.bonds[0].free > 0
    free, reserved = served.escrow.bond_of(served.dev.supplier.address)
    assert (dash.bonds[0].free, dash.bonds[0].reserved) == (free, reserved)
    held = sum(t.amount for t in dash.in_escrow)
    assert held >= second.order.amount
    settlement = dash.recent_settlements[0]
    assert settlement.order_id == first.order_id and settlement.kind == "supplier"
    assert settlement.amount == rules.complete(rules.Terms.of(first.order)).to_supplier
    row = next(r for r in dash.listings if r.listing_id == served.dev.listing_id)
    assert row.stock == row.committed - row.sold and row.sold >= 3
    assert json.loads(dash.model_dump_json())["bonds"][0]["free"] == str(free)


def test_chunked_upload_is_cut_off_at_the_cap(served: Served) -> None:
    before = _stock(served)
    supplier = served.client(served.dev.supplier)

    def chunks() -> Iterator[bytes]:
        for i in range(40):
            yield b"\n".join(demo_codes(100, 60_000 + 100 * i)) + b"\n"

    response = httpx.post(
        f"{served.url}/supplier/listings/{served.dev.listing_id}/codes",
        content=chunks(),
        headers={"Authorization": f"Bearer {supplier.token}", "Content-Type": "text/csv"},
    )
    assert response.status_code == 413, response.text
    assert _stock(served) == before
