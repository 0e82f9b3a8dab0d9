"""The supplier's side of the API: dashboard data, and CSV uploads that are either stored and
committed whole or refused with a 4xx naming the offending lines, with nothing half-written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from backend.client import ApiError, answer_json
from backend.schemas import SettlementSummaryPublic
from bench.world import demo_codes
from contracts import order_rules as rules
from contracts.encoding import ZERO_ADDRESS, Order, OrderState
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
    # Not the listing's supplier: refused before anything is stored.
    assert err.value.status == 403 and "belongs to" in err.value.detail
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


def _summary(served: Served) -> SettlementSummaryPublic:
    """The supplier's settlement summary in the native coin (zeros before its first order)."""
    dash = served.client(served.dev.supplier).dashboard()
    assert dash.chain_time is not None
    return next(
        (s for s in dash.settlement if s.token == ZERO_ADDRESS),
        SettlementSummaryPublic(
            token=ZERO_ADDRESS,
            settled=0,
            settled_orders=0,
            due=0,
            due_orders=0,
            in_window=0,
            in_window_orders=0,
            next_due_at=None,
        ),
    )


def test_settled_due_and_in_window_amounts_are_what_the_chain_pays(served: Served) -> None:
    supplier, buyer = served.dev.supplier, served.dev.buyers[1]
    served.upload(4, start=70_000)
    bought = [served.buy(buyer, q) for q in (1, 2, 1)]
    orders = {
        b.order_id: poll(
            f"order {b.order_id} delivered",
            lambda b=b: (
                (o := served.current(b.order_id, buyer)).state == OrderState.DELIVERED and o
            ),
        )
        for b in bought
    }
    client = served.client(supplier)
    delivered = client.supplier_orders(states=[int(OrderState.DELIVERED)])
    assert set(orders) <= {int(o.order_id) for o in delivered}
    served.wait_indexed()

    # Everything delivered is in its window: nothing is due yet; the buyer sees the deadline.
    before = _summary(served)
    owed = {
        int(o.order_id): rules.complete(rules.Terms.of(Order.from_record(o))) for o in delivered
    }
    assert before.due == before.due_orders == 0
    assert before.in_window == sum(p.to_supplier for p in owed.values())
    assert before.in_window_orders == len(delivered)
    assert before.next_due_at == min(int(o.deadline) for o in delivered)
    first = bought[0]
    view = served.client(buyer).order(first.order_id)
    assert (view.settles_at, view.settle_due) == (orders[first.order_id].deadline, False)
    assert client.order(first.order_id).settles_at == view.settles_at  # the supplier's view
    listed = {o.order_id: o for o in served.client(buyer).my_orders()}
    assert listed[first.order_id].settles_at == view.settles_at
    assert _due_ids(served) == []

    # The buyer confirms one: settled grows by exactly what the chain credits the supplier.
    paid_before = served.escrow.balance_of(supplier.address)
    served.escrow.confirm(buyer, first.order_id, orders[first.order_id])
    credited = served.escrow.balance_of(supplier.address) - paid_before
    assert credited == owed[first.order_id].to_supplier
    confirmed = poll(
        "the confirmation in the summary",
        lambda: (s := _summary(served)).settled_orders == before.settled_orders + 1 and s,
    )
    assert confirmed.settled == before.settled + credited
    assert confirmed.in_window == before.in_window - credited
    assert served.client(buyer).order(first.order_id).settles_at is None  # completed

    # Past every deadline: the rest is due, and the dashboard says how much.
    served.runtime.chain.travel_to(max(int(o.deadline) for o in delivered) + 1)
    served.wait_indexed()
    due = _summary(served)
    rest = [oid for oid in owed if oid != first.order_id]
    assert due.due == sum(owed[oid].to_supplier for oid in rest)
    assert (due.due_orders, due.in_window, due.in_window_orders) == (len(rest), 0, 0)
    assert due.next_due_at is None and due.settled == confirmed.settled
    assert sorted(_due_ids(served)) == sorted(rest)
    assert served.client(buyer).order(bought[1].order_id).settle_due is True

    # Settling them pays the supplier exactly the due amount; they count as settled after.
    due_orders = client.supplier_orders(states=[int(OrderState.DELIVERED)])
    items = [(int(o.order_id), Order.from_record(o)) for o in due_orders]
    paid_before = served.escrow.balance_of(supplier.address)
    served.escrow.tx.reset_nonce(buyer.address)
    served.escrow.settle(buyer, items)  # anyone may settle
    assert served.escrow.balance_of(supplier.address) - paid_before == due.due
    after = poll(
        "the settlement in the summary",
        lambda: (s := _summary(served)).due_orders == 0 and s,
    )
    assert after.settled == due.settled + due.due
    assert after.settled_orders == due.settled_orders + len(rest)
    assert _due_ids(served) == []
    assert served.client(buyer).order(bought[1].order_id).settle_due is False


def _due_ids(served: Served) -> list[int]:
    """The ids `GET /supplier/orders/due` answers for the dev supplier."""
    client = served.client(served.dev.supplier)
    rows = answer_json(client.request("GET", "/supplier/orders/due"))
    assert all(r["settle_due"] and r["state_name"] == "delivered" for r in rows), rows
    return [int(r["order_id"]) for r in rows]
