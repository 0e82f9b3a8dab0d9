"""Issue 13, notifications: at-least-once delivery from the outbox, on SQLite and PostgreSQL.

A real webhook receiver on loopback is down, then answers 500, then is slow, then works: the
message still arrives, signed (Standard Webhooks), with the same ``webhook-id`` on every try.
A receiver that never works gets the message dead-lettered after the retry budget, and a replay
sends it again. Email goes through a real SMTP server (aiosmtpd) and never carries a code. The
dispatcher's clock is the test's, so back-off pauses cost no waiting.
"""

from __future__ import annotations

import json
import os
import random
import time

from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from backend.notify.catalog import KINDS, render
from backend.notify.channels import EmailChannel, Message, SmtpSettings, Target, WebhookChannel
from backend.notify.dispatcher import Dispatcher, backoff, replay
from backend.notify.endpoints import SecretBox, new_secret
from backend.notify.models import DEAD, PENDING, SENT, Endpoint, OutboxMessage
from tests.backend.notify_helpers import receiver, smtp_server

MASTER = os.urandom(32)


class Clock:
    """Unix time the test moves by hand (starting now: signatures carry it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _endpoint(sessions: sessionmaker[Session], url: str, secret: str) -> int:
    with sessions() as session:
        endpoint = Endpoint(
            owner="0x" + "ab" * 20,
            kind="webhook",
            target=url,
            events="*",
            as_arbiter=False,
            secret_sealed=SecretBox(MASTER).seal(secret),
            active=True,
        )
        session.add(endpoint)
        session.commit()
        return endpoint.id


def _queue(sessions: sessionmaker[Session], endpoint_id: int, now: float) -> int:
    with sessions() as session:
        row = OutboxMessage(
            endpoint_id=endpoint_id,
            event_type="order.paid",
            dedupe_key="ev:1",
            payload=json.dumps({"order_id": "4294967296", "quantity": 2}),
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        session.commit()
        return row.id


def _row(sessions: sessionmaker[Session], message_id: int) -> OutboxMessage:
    with sessions() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def _dispatcher(sessions: sessionmaker[Session], clock: Clock, **kw: float) -> Dispatcher:
    # Long enough for a loaded machine to answer; the slow receiver takes longer still.
    channel = WebhookChannel(allow_private=True, timeout=2.0)
    return Dispatcher(
        sessions,
        {"webhook": channel},
        MASTER,
        clock=clock,
        rng=random.Random(7),
        backoff_base_s=1.0,
        backoff_max_s=60.0,
        **kw,
    )


def _next_try(sessions: sessionmaker[Session], clock: Clock, message_id: int) -> None:
    clock.now = max(clock.now, _row(sessions, message_id).next_attempt_at) + 0.001


def test_down_then_500_then_slow_then_up_still_delivers_once_signed(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    secret = new_secret()
    with receiver(start=False) as hook:
        mid = _queue(sessions, _endpoint(sessions, hook.url, secret), clock.now)
        dispatcher = _dispatcher(sessions, clock)
        assert dispatcher.run_once() == 0  # down: connection refused
        row = _row(sessions, mid)
        assert (row.state, row.attempts) == (PENDING, 1) and "ConnectError" in str(row.last_error)
        assert dispatcher.run_once() == 0  # not due yet: nothing is tried
        assert _row(sessions, mid).attempts == 1
        hook.start()
        hook.slow_s = 5.0
        for mode, attempts in (("error", 2), ("slow", 3)):
            hook.mode = mode
            _next_try(sessions, clock, mid)
            assert dispatcher.run_once() == 0
            assert _row(sessions, mid).attempts == attempts
        assert "HTTP 500" not in str(_row(sessions, mid).last_error)  # the last was the timeout
        hook.mode = "ok"
        _next_try(sessions, clock, mid)
        assert dispatcher.run_once() == 1
        assert _row(sessions, mid).state == SENT
        _next_try(sessions, clock, mid)
        assert dispatcher.run_once() == 0  # sent once, never again
        got = hook.received
        assert len(got) == 3  # the 500, the slow one, the good one (the first found nobody)
        assert {r.headers["webhook-id"] for r in got} == {f"msg_{mid}"}
        for r in got:
            Webhook(secret).verify(r.body, r.headers)
        assert got[-1].json["type"] == "order.paid"
        assert got[-1].json["data"] == {"order_id": "4294967296", "quantity": 2}


def test_a_receiver_that_never_works_is_dead_lettered_then_replayed(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    secret = new_secret()
    with receiver() as hook:
        hook.mode = "error"
        mid = _queue(sessions, _endpoint(sessions, hook.url, secret), clock.now)
        dispatcher = _dispatcher(sessions, clock, retry_budget_s=30.0)
        tries = 0
        while _row(sessions, mid).state == PENDING:
            dispatcher.run_once()
            tries += 1
            assert tries < 20, "never dead-lettered"
            _next_try(sessions, clock, mid)
        row = _row(sessions, mid)
        assert row.state == DEAD and row.attempts == tries and "HTTP 500" in str(row.last_error)
        assert 2 <= tries <= 6  # 1, 2, 4, 8... s with jitter within a 30-s budget
        hook.mode = "ok"
        with sessions() as session:
            assert replay(session, mid, clock.now) is True
            assert replay(session, mid, clock.now) is False  # not dead any more
        assert dispatcher.run_once() == 1
        assert _row(sessions, mid).state == SENT
        assert hook.received[-1].headers["webhook-id"] == f"msg_{mid}"


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    for attempts, middle in ((0, 5.0), (1, 10.0), (3, 40.0), (20, 3600.0)):
        pause = backoff(attempts, base_s=5.0, max_s=3600.0, rng=rng)
        assert 0.5 * middle <= pause <= 1.5 * middle


def test_every_kind_goes_out_by_email_through_a_real_smtp_server_without_a_code() -> None:
    data: dict[str, object] = {
        "order_id": "8589934593",
        "listing_id": 2,
        "quantity": 1,
        "amount": "10000000000000000",
        "deadline_utc": "2026-12-03 10:00 UTC",
        "dispute_deadline_utc": "2026-12-04 10:00 UTC",
        "arbitration_deadline_utc": "2026-12-10 10:00 UTC",
        "hours_left": 1,
        "buyer_bps_pct": 100.0,
        "slash_bps_pct": 50.0,
        "stock": 3,
        "threshold": 20,
        "sku_label": "steam-wallet-50",
        "block": 1234,
        "listing_ids": "2, 5",
        "link": "https://shop.example/#/order/8589934593",
    }
    with smtp_server() as (port, inbox):
        channel = EmailChannel(SmtpSettings(host="127.0.0.1", port=port, sender="k@example"))
        for n, kind in enumerate(KINDS):
            channel.send(
                Target(kind="email", address="buyer@example.com"),
                Message(id=f"msg_{n}", type=kind, timestamp=int(time.time()), data=data),
            )
        assert len(inbox) == len(KINDS)
        for kind, mail in zip(KINDS, inbox, strict=True):
            subject, text = render(kind, data)
            assert mail["Subject"] == f"[kameng] {subject}" and mail["To"] == "buyer@example.com"
            body = mail.get_payload(decode=True)
            assert isinstance(body, bytes)
            assert text in body.decode() and "?" not in subject
            assert b"KMG-" not in body and b"salt" not in body.lower()
