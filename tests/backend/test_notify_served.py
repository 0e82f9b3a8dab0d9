"""Issue 13, notifications end to end: a served backend (embedded chain, indexer, delivery
agent, the notification producer and sender in their threads), subscriptions through the API,
real webhook receivers on loopback; on SQLite and PostgreSQL.

- the supplier is told of a paid order, the buyer that the codes are ready, each message signed
  with the endpoint's own secret and carrying no code;
- a low-stock alert fires once per crossing, not once per sale;
- the buyer's reminder comes before the dispute window closes;
- a subscription that cannot be served is refused with a 422 saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from backend.client import ApiError, KamengClient
from backend.notify.endpoints import EndpointRejected, check_webhook_url
from bench.world import demo_codes
from contracts.encoding import OrderState
from tests.backend.api_helpers import Served, backend_settings, database, poll, serve
from tests.backend.notify_helpers import Receiver, receiver, self_signed_tls_server


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    settings = backend_settings(notify_allow_private=True)
    with database(request.param) as url, serve(settings, database_url=url, buyers=2) as s:
        s.upload(30)
        yield s


def _subscribe(client: KamengClient, url: str, events: list[str]) -> str:
    made = client.request(
        "POST",
        "/notifications/endpoints",
        json={"kind": "webhook", "target": url, "events": events},
    ).json()
    assert made["secret"].startswith("whsec_") and made["events"] == sorted(events)
    return str(made["secret"])


def _verified(hook: Receiver, kind: str, secret: str, order_id: int | None = None) -> list[dict]:
    found = []
    for r in hook.of_type(kind):
        Webhook(secret).verify(r.body, r.headers)
        data = r.json["data"]
        if order_id is None or data.get("order_id") == str(order_id):
            found.append(data)
    return found


def test_the_supplier_hears_of_the_sale_and_the_buyer_of_the_codes(served: Served) -> None:
    supplier, buyer = served.dev.supplier, served.dev.buyers[0]
    with receiver() as shop, receiver() as phone:
        shop_secret = _subscribe(served.client(supplier), shop.url, ["order.paid"])
        phone_secret = _subscribe(served.client(buyer), phone.url, ["order.delivered"])
        bought = served.buy(buyer, 2)
        paid = poll(
            "order.paid at the supplier's webhook",
            lambda: _verified(shop, "order.paid", shop_secret, bought.order_id),
        )
        ready = poll(
            "order.delivered at the buyer's webhook",
            lambda: _verified(phone, "order.delivered", phone_secret, bought.order_id),
        )
        assert paid[0]["quantity"] == 2 and paid[0]["supplier"] == supplier.address
        assert ready[0]["link"].endswith(f"#/order/{bought.order_id}")
        assert "dispute_deadline" in ready[0]
        # Each endpoint got only what it asked for, and no message carries a code.
        assert shop.of_type("order.delivered") == [] and phone.of_type("order.paid") == []
        codes = set(demo_codes(30))
        for r in shop.received + phone.received:
            assert not any(c in r.body for c in codes)


def test_a_low_stock_alert_fires_once_per_crossing(served: Served) -> None:
    supplier, buyer = served.dev.supplier, served.dev.buyers[1]
    listing = served.dev.listing_id
    stock = served.client().listing(listing).stock
    with receiver() as shop:
        client = served.client(supplier)
        secret = _subscribe(client, shop.url, ["listing.low_stock", "order.paid"])
        client.request(
            "PUT", f"/notifications/listings/{listing}/threshold", json={"threshold": stock - 2}
        )
        first = served.buy(buyer, 3)  # crosses the threshold
        poll("the low-stock alert", lambda: _verified(shop, "listing.low_stock", secret))
        second = served.buy(buyer, 1)  # still below: no second alert
        poll(
            "order.paid of the second sale",
            lambda: _verified(shop, "order.paid", secret, second.order_id),
        )
        assert _verified(shop, "order.paid", secret, first.order_id)
        alerts = _verified(shop, "listing.low_stock", secret)
        assert len(alerts) == 1
        assert alerts[0] == {
            "listing_id": listing,
            "stock": stock - 3,
            "threshold": stock - 2,
            "link": f"{served.url}/#/supplier",
        }
    with pytest.raises(ApiError, match="403"):
        served.client(buyer).request(
            "PUT", f"/notifications/listings/{listing}/threshold", json={"threshold": 5}
        )


def test_subscriptions_that_cannot_be_served_are_refused_with_the_reason(
    served: Served, tmp_path: Path
) -> None:
    client = served.client(served.dev.buyers[0])

    def refused(body: dict[str, object]) -> str:
        with pytest.raises(ApiError) as caught:
            client.request("POST", "/notifications/endpoints", json=body)
        assert caught.value.status == 422, caught.value.detail
        return caught.value.detail

    assert "https://" in refused({"kind": "webhook", "target": "ftp://example.com/x"})
    assert "no user name" in refused({"kind": "webhook", "target": "https://a:b@example.com/"})
    assert "unknown notification type" in refused(
        {"kind": "webhook", "target": "https://example.com/", "events": ["order.exploded"]}
    )
    assert "sends no email" in refused({"kind": "email", "target": "me@example.com"})
    with self_signed_tls_server(tmp_path) as port:
        assert "TLS" in refused({"kind": "webhook", "target": f"https://127.0.0.1:{port}/"})
    # Production (no KAMENG_NOTIFY_ALLOW_PRIVATE): the same check the API runs refuses every
    # private, loopback and link-local target.
    assert backend_settings().notify_private_ok is False
    for url in (
        "http://127.0.0.1:9/",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/",
    ):
        with pytest.raises(EndpointRejected, match="private, loopback or reserved"):
            check_webhook_url(url, allow_private=False)
    mine = client.request("GET", "/notifications/endpoints").json()
    assert all("127.0.0.1:9" not in e["target"] for e in mine)


def test_the_cli_adds_tests_lists_and_removes_an_endpoint(served: Served, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from backend.cli import app

    key = tmp_path / "supplier.key"
    key.write_text("0x" + bytes(served.dev.supplier.key).hex())
    who = ["--api", served.url, "--key-file", str(key)]
    runner = CliRunner()
    with receiver() as hook:
        made = runner.invoke(app, ["notify", "add", "--webhook", hook.url, *who])
        assert made.exit_code == 0, made.output
        secret = made.output.split("signing secret (shown once): ")[1].split()[0]
        endpoint_id = made.output.split("endpoint ")[1].split(":")[0]
        listed = runner.invoke(app, ["notify", "list", *who])
        assert listed.exit_code == 0 and secret not in listed.output
        mine = served.client(served.dev.supplier).request("GET", "/notifications/endpoints")
        assert any(str(e["id"]) == endpoint_id and e["target"] == hook.url for e in mine.json())
        tested = runner.invoke(app, ["notify", "test", endpoint_id, *who])
        assert tested.exit_code == 0, tested.output
        got = hook.of_type("endpoint.test")
        assert len(got) == 1
        Webhook(secret).verify(got[0].body, got[0].headers)
        hook.stop()  # the receiver goes away: the test says so
        down = runner.invoke(app, ["notify", "test", endpoint_id, *who])
        assert down.exit_code == 1 and "did not get through" in down.output
        removed = runner.invoke(app, ["notify", "remove", endpoint_id, *who])
        assert removed.exit_code == 0
        gone = runner.invoke(app, ["notify", "test", endpoint_id, *who])
        assert gone.exit_code == 1 and f"no endpoint {endpoint_id}" in gone.output


def test_the_buyer_is_reminded_before_the_dispute_window_closes(served: Served) -> None:
    """Runs last in the module: it moves the chain's clock."""
    buyer = served.dev.buyers[1]
    with receiver() as phone:
        secret = _subscribe(
            served.client(buyer), phone.url, ["order.dispute_window_closing", "order.delivered"]
        )
        bought = served.buy(buyer, 1)
        ready = poll(
            "order.delivered",
            lambda: _verified(phone, "order.delivered", secret, bought.order_id),
        )
        assert _verified(phone, "order.dispute_window_closing", secret, bought.order_id) == []
        closes = int(ready[0]["dispute_deadline"])
        served.runtime.chain.travel_to(closes - 1800)  # half an hour before it closes
        reminded = poll(
            "the dispute-window reminder",
            lambda: _verified(phone, "order.dispute_window_closing", secret, bought.order_id),
        )
        assert reminded[0]["hours_left"] == 1 and reminded[0]["dispute_deadline"] == closes
        order = served.current(bought.order_id, buyer)
        assert order.state == OrderState.DELIVERED  # still open: the reminder came in time
