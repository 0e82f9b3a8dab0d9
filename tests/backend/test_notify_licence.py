"""Issue 13, notifications: "licence revoked → supplier", on SQLite and PostgreSQL.

A served backend (embedded chain, indexer, delivery agent, API) with the notification workers
off: the test runs the producer and the sender itself, so that it can count what each pass
writes and kill a pass where it wants. The rights admin revokes the supplier's licence
(``authorize(supplier, sku, 0x00..00)``); the supplier's webhook (a real receiver on loopback)
and email (a real SMTP server) each get one message naming the sku, the listings affected, the
block and the transaction, signed, and carrying no code and no secret. A revocation of a licence
already revoked is not told; one followed at once by a new grant still is (the producer reads
the logs, not the latest authorization); a pass killed before its commit loses nothing, and
passes run again, or by a restarted producer, write nothing twice. A producer upgraded to this
kind starts where its order history stood: it does not tell revocations of long ago.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from backend.notify.models import Endpoint, NotifyCursor, OutboxMessage
from backend.notify.producer import EVENTS, LICENCES, Producer, sku_name
from backend.notify.service import dispatcher_for
from backend.runtime import DEV_SKU_NAME
from bench.world import demo_codes
from contracts.encoding import sku_id
from tests.backend.api_helpers import Served, backend_settings, database, poll, serve
from tests.backend.notify_helpers import receiver, smtp_server

ZERO = b"\x00" * 32
GRANT = b"\x11" * 32
CODES = 10


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Served, list[Any]]]:
    """A backend whose notification workers are off, a mail server, and codes in the vault."""
    with smtp_server() as (port, inbox):
        settings = backend_settings(
            notify=False, notify_allow_private=True, smtp_host="127.0.0.1", smtp_port=port
        )
        with database(request.param) as url, serve(settings, database_url=url, buyers=1) as s:
            s.upload(CODES)
            yield s, inbox


class Crash(Exception):
    """A simulated kill."""


def _subscribe(served: Served, account: Any, kind: str, target: str) -> tuple[int, str | None]:
    made = (
        served.client(account)
        .request(
            "POST",
            "/notifications/endpoints",
            json={"kind": kind, "target": target, "events": ["licence.revoked"]},
        )
        .json()
    )
    return int(made["id"]), made["secret"]


def _rows(served: Served, endpoints: set[int]) -> list[OutboxMessage]:
    with served.runtime.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.endpoint_id.in_(endpoints),
                    OutboxMessage.event_type == "licence.revoked",
                )
                .order_by(OutboxMessage.id)
            )
        )


def _authorize(served: Served, attestation: bytes) -> Any:
    dev = served.dev
    served.escrow.tx.reset_nonce(dev.admin.address)
    result = served.escrow.authorize(dev.admin, dev.supplier.address, dev.sku, attestation)
    served.wait_indexed()
    return result


def _producer(served: Served) -> Producer:
    return Producer(served.runtime.sessions, public_url=served.url)


def _pass(served: Served, producer: Producer | None = None) -> int:
    return (producer or _producer(served)).run_once(served.runtime.chain.timestamp())


def test_the_supplier_hears_once_of_each_revocation_by_webhook_and_email(
    served: tuple[Served, list[Any]],
) -> None:
    s, inbox = served
    supplier, buyer = s.dev.supplier, s.dev.buyers[0]
    with receiver() as shop, receiver() as phone:
        hook, secret = _subscribe(s, supplier, "webhook", shop.url)
        mail, _ = _subscribe(s, supplier, "email", "shop@example.com")
        # A buyer may subscribe to the type, but a licence is the supplier's business.
        other, _ = _subscribe(s, buyer, "webhook", phone.url)
        mine = {hook, mail, other}
        producer = _producer(s)
        _pass(s, producer)  # the grant of the dev world's set-up is no revocation
        assert _rows(s, mine) == []

        revoked = _authorize(s, ZERO)
        assert _pass(s, producer) == 2  # the supplier's webhook and email
        assert _pass(s, producer) == 0 and _pass(s) == 0  # again, and after a restart
        dispatcher = dispatcher_for(s.runtime.settings, s.runtime.sessions)
        dispatcher.run_once()
        got = poll("the webhook", lambda: shop.of_type("licence.revoked"))
        assert len(got) == 1
        Webhook(str(secret)).verify(got[0].body, got[0].headers)
        data = got[0].json["data"]
        assert data == {
            "supplier": supplier.address,
            "sku": "0x" + s.dev.sku.hex(),
            "sku_name": DEV_SKU_NAME,
            "sku_label": DEV_SKU_NAME,
            "listings": [s.dev.listing_id],
            "listing_ids": str(s.dev.listing_id),
            "block": revoked.block_number,
            "tx": revoked.tx_hash.lower(),
            "link": f"{s.url}/#/supplier",
        }
        mails = [m for m in inbox if m["To"] == "shop@example.com"]
        assert len(mails) == 1
        assert mails[0]["Subject"] == f"[kameng] Licence revoked: {DEV_SKU_NAME}"
        body = mails[0].get_payload(decode=True)
        assert isinstance(body, bytes)
        assert f"revoked in block {revoked.block_number}" in body.decode()
        assert f"({s.dev.listing_id})" in body.decode()
        _no_secret(s, [got[0].body, body])
        assert phone.received == [] and _rows(s, {other}) == []

        # Revoking what is already revoked changes nothing: not told.
        _authorize(s, ZERO)
        assert _pass(s, producer) == 0
        # Granted, revoked and granted again before a pass: the revocation is still told.
        _authorize(s, GRANT)
        again = _authorize(s, ZERO)
        _authorize(s, GRANT)
        assert _pass(s, producer) == 2
        rows = _rows(s, mine)
        assert [r.endpoint_id for r in rows] == [hook, mail, hook, mail]
        assert len({r.dedupe_key for r in rows}) == 2
        dispatcher.run_once()
        got = poll("the second webhook", lambda: shop.of_type("licence.revoked")[1:])
        assert got[0].json["data"]["block"] == again.block_number
        assert len(shop.of_type("licence.revoked")) == 2


def test_a_killed_pass_loses_no_revocation_and_a_rerun_doubles_none(
    served: tuple[Served, list[Any]],
) -> None:
    s, _ = served
    with receiver() as shop:
        hook, _ = _subscribe(s, s.dev.supplier, "webhook", shop.url)
        _authorize(s, GRANT)
        _pass(s)
        revoked = _authorize(s, ZERO)
        with s.runtime.sessions() as session:
            before = session.get(NotifyCursor, LICENCES)
            assert before is not None
            position = before.position

        def dying() -> Any:
            """A session whose commit is where the producer is killed."""
            session = s.runtime.sessions()

            def die() -> None:
                raise Crash

            session.commit = die  # type: ignore[method-assign]
            return session

        with pytest.raises(Crash):
            Producer(dying, public_url=s.url).run_once(s.runtime.chain.timestamp())
        assert _rows(s, {hook}) == []  # nothing half-written...
        with s.runtime.sessions() as session:
            cursor = session.get(NotifyCursor, LICENCES)
            assert cursor is not None and cursor.position == position  # ...and nothing skipped
        with s.runtime.sessions() as session:
            told = [
                e.id
                for e in session.scalars(select(Endpoint).where(Endpoint.active.is_(True)))
                if e.owner == s.dev.supplier.address and e.wants("licence.revoked")
            ]
        assert hook in told
        assert _pass(s) == len(told)  # restarted: told now, once per endpoint of the supplier
        assert _pass(s) == 0 and _pass(s) == 0
        (row,) = _rows(s, {hook})
        assert json.loads(row.payload)["block"] == revoked.block_number
        assert {r.endpoint_id for r in _rows(s, set(told)) if r.dedupe_key == row.dedupe_key} == (
            set(told)
        )
        with s.runtime.sessions() as session:
            cursor = session.get(NotifyCursor, LICENCES)
            assert cursor is not None and cursor.position > position


def test_a_producer_upgraded_to_tell_revocations_starts_where_its_history_stood(
    served: tuple[Served, list[Any]],
) -> None:
    from indexer import models as mirror

    s, _ = served
    with receiver() as shop:
        hook, _ = _subscribe(s, s.dev.supplier, "webhook", shop.url)
        _authorize(s, GRANT)
        _pass(s)
        _authorize(s, ZERO)  # revoked while the server ran a version without the kind
        s.buy(s.dev.buyers[0])
        s.wait_indexed()
        with s.runtime.sessions() as session:
            # As that version left it: its order history read to the end, no licence cursor.
            last = session.scalar(select(func.max(mirror.OrderEvent.id)))
            session.merge(NotifyCursor(name=EVENTS, position=last))
            gone = session.get(NotifyCursor, LICENCES)
            assert gone is not None
            session.delete(gone)
            session.commit()
        _pass(s)
        assert _rows(s, {hook}) == []  # the old revocation is not told now
        _authorize(s, GRANT)
        revoked = _authorize(s, ZERO)
        _pass(s)
        (row,) = _rows(s, {hook})  # a new one is
        assert json.loads(row.payload)["block"] == revoked.block_number


def _no_secret(served: Served, bodies: list[bytes]) -> None:
    """No code, no key and no attestation in what was sent."""
    settings = served.runtime.settings
    secrets = [
        *demo_codes(CODES),
        settings.master_key.get_secret_value().encode(),
        settings.session_key.get_secret_value().encode(),
        GRANT.hex().encode(),
    ]
    for body in bodies:
        for secret in secrets:
            assert secret not in body


def test_the_sku_name_is_given_only_where_the_metadata_proves_it() -> None:
    sku = "0x" + sku_id("steam-wallet-50").hex()
    assert sku_name(sku, ["kameng:sku/steam-wallet-50"]) == "steam-wallet-50"
    assert sku_name(sku, ["ipfs://steam-wallet-50"]) == "steam-wallet-50"
    assert sku_name(sku, ['data:application/json,{"sku":"steam-wallet-50"}']) == "steam-wallet-50"
    assert sku_name(sku, ["kameng:sku/steam-wallet-100", "data:,x"]) is None  # not proven
    assert sku_name(sku, []) is None
