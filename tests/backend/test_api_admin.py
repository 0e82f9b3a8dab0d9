"""Issue 14, the operator's console API: the marketplace at a glance and the audit log, for
holders of an operator role only; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_utils import keccak

from contracts.encoding import OrderState
from tests.backend.api_helpers import Served, backend_settings, database, poll, serve


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with database(request.param) as url, serve(backend_settings(), database_url=url) as s:
        s.upload(10)
        yield s


def _get(served: Served, who: object, path: str) -> httpx.Response:
    client = served.client(who)  # type: ignore[arg-type]
    return httpx.get(served.url + path, headers={"Authorization": f"Bearer {client.token}"})


def test_only_operators_see_the_console(served: Served) -> None:
    for path in ("/admin/overview", "/admin/audit"):
        assert httpx.get(served.url + path).status_code == 401
        refused = _get(served, served.dev.buyers[0], path)
        assert refused.status_code == 403 and "RIGHTS_ADMIN_ROLE" in refused.json()["detail"]


def test_overview_counts_what_the_chain_holds(served: Served) -> None:
    buyer = served.dev.buyers[0]
    bought = served.buy(buyer, 2)
    poll(
        "delivered",
        lambda: served.current(bought.order_id, buyer).state == OrderState.DELIVERED,
    )
    served.wait_indexed()
    body = _get(served, served.dev.admin, "/admin/overview").json()
    (native,) = body["volume"]
    assert native["orders"] >= 1 and int(native["amount"]) >= bought.order.amount
    assert native["orders_24h"] == native["orders"]  # all paid within the day
    assert body["orders_by_state"].get("delivered", 0) >= 1
    assert body["undelivered_orders"] == 0 and body["open_disputes"] == 0
    assert body["indexer_lag_blocks"] is not None and body["indexer_lag_blocks"] >= 0
    assert body["dead_notifications"] == 0 and body["stuck_transactions"] == 0


def test_audit_log_names_each_operator_action_and_who_sent_it(served: Served) -> None:
    escrow, dev = served.escrow, served.dev
    escrow.pause(dev.admin)
    escrow.unpause(dev.admin)
    newcomer = served.runtime.chain.new_account(ether=1)
    escrow.authorize(dev.admin, newcomer.address, dev.sku, keccak(text="licence: audit"))
    served.wait_indexed()
    entries = _get(served, dev.admin, "/admin/audit?limit=10").json()
    names = [e["name"] for e in entries]
    assert names[:3] == ["SkuAuthorized", "Unpaused", "Paused"]  # newest first
    grant = entries[0]
    assert grant["actor"] == dev.admin.address
    assert grant["args"]["supplier"] == newcomer.address
    assert grant["args"]["attestationHash"] == "0x" + keccak(text="licence: audit").hex()
    assert all(e["timestamp"] for e in entries[:3])
    older = _get(served, dev.admin, f"/admin/audit?before_block={grant['block_number']}").json()
    assert older and older[0]["name"] == "Unpaused"
    assert "RoleGranted" in {e["name"] for e in older}  # the deployment's own role grants
    bad = _get(served, dev.admin, "/admin/audit?limit=0")
    assert bad.status_code == 422
