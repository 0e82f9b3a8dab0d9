"""Sends due outbox messages, retries with exponential back-off and jitter, dead-letters.

A pass takes up to `batch` messages whose ``next_attempt_at`` has come, claims each by moving
its ``next_attempt_at`` a lease ahead in a conditional ``UPDATE`` (so two dispatchers, even in
two processes, never send the same attempt), sends it, and records the outcome. A message that
has not got through `retry_budget_s` after it was created is marked ``dead``; its owner sees it
(``GET /notifications/dead``) and can replay it. The dispatcher runs in its own thread: a slow
or failing receiver delays only other messages, never the indexer or the delivery agent.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from backend.notify.channels import Channel, DeliveryFailed, Message, Target
from backend.notify.endpoints import SecretBox
from backend.notify.models import DEAD, PENDING, SENT, Endpoint, OutboxMessage

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Seconds a claimed message is left alone before another pass may take it again.
LEASE_S = 60.0


def backoff(attempts: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """The pause before attempt ``attempts + 1``: ``base * 2^attempts`` capped at `max_s`,
    times a jitter factor between 0.5 and 1.5."""
    return float(min(base_s * 2**attempts, max_s) * rng.uniform(0.5, 1.5))


def message_of(row: OutboxMessage, now: float) -> Message:
    """The message a row holds, as sent at `now`. Its id is ``msg_<row id>``, the same on every
    retry (receivers de-duplicate on it); its timestamp is the attempt's, since Standard
    Webhooks receivers refuse a signature older than a few minutes."""
    data = json.loads(row.payload)
    return Message(id=f"msg_{row.id}", type=row.event_type, timestamp=int(now), data=data)


class Dispatcher:
    """Sends what the outbox holds through the channels.

    Args:
        session_factory: Makes database sessions.
        channels: One channel per endpoint kind (``webhook``, ``email``).
        master_key: Opens the webhooks' secrets.
        retry_budget_s: How long a message is retried before it is dead-lettered.
        backoff_base_s: The first pause; each failure doubles it...
        backoff_max_s: ...up to this.
        clock: Current Unix time (tests pass their own).
        rng: Jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        channels: Mapping[str, Channel],
        master_key: bytes,
        *,
        retry_budget_s: float = 86_400.0,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 3_600.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        """Bind the dispatcher."""
        self.session_factory = session_factory
        self.channels = dict(channels)
        self.box = SecretBox(master_key)
        self.retry_budget_s = retry_budget_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.rng = rng or random.Random()

    def _claim(self, session: Session, row: OutboxMessage, now: float) -> bool:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row.id,
                OutboxMessage.state == PENDING,
                OutboxMessage.next_attempt_at == row.next_attempt_at,
            )
            .values(next_attempt_at=now + LEASE_S)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return getattr(result, "rowcount", 0) == 1

    def target_of(self, endpoint: Endpoint) -> Target:
        """Where an endpoint's messages go, with its opened secret."""
        secret = self.box.open(endpoint.secret_sealed) if endpoint.secret_sealed else None
        return Target(kind=endpoint.kind, address=endpoint.target, secret=secret)

    def send_now(self, endpoint: Endpoint, message: Message) -> str | None:
        """Send one message outside the outbox (the "send a test message" button); return the
        reason it failed, or None."""
        channel = self.channels.get(endpoint.kind)
        if channel is None:
            return f"this server sends no {endpoint.kind} messages"
        try:
            channel.send(self.target_of(endpoint), message)
        except DeliveryFailed as exc:
            return str(exc)
        return None

    def run_once(self, batch: int = 50) -> int:
        """One pass over the due messages; returns how many were delivered."""
        now = self.clock()
        delivered = 0
        with self.session_factory() as session:
            due = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.state == PENDING, OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(batch)
            ).all()
            for row in due:
                if not self._claim(session, row, now):
                    continue  # another dispatcher took it
                endpoint = session.get(Endpoint, row.endpoint_id)
                failure = "the endpoint was removed"
                if endpoint is not None and endpoint.active:
                    failure = self.send_now(endpoint, message_of(row, self.clock())) or ""
                done = self.clock()
                if not failure:
                    row.state, row.sent_at, row.last_error = SENT, done, None
                    delivered += 1
                else:
                    row.attempts += 1
                    row.last_error = failure[:300]
                    pause = backoff(
                        row.attempts - 1,
                        base_s=self.backoff_base_s,
                        max_s=self.backoff_max_s,
                        rng=self.rng,
                    )
                    if done + pause - row.created_at > self.retry_budget_s:
                        row.state = DEAD
                        log.warning(
                            "notification msg_%d to endpoint %d dead after %d attempts: %s",
                            row.id,
                            row.endpoint_id,
                            row.attempts,
                            row.last_error,
                        )
                    else:
                        row.next_attempt_at = done + pause
                session.commit()
        return delivered

    def run_forever(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Run passes until `stop` is set, pausing `poll_s` when nothing was due."""
        while not stop.is_set():
            try:
                sent = self.run_once()
            except Exception:  # a database hiccup: log, pause, go on
                log.exception("notification pass failed")
                sent = 0
            if not sent:
                stop.wait(poll_s)


def replay(session: Session, message_id: int, now: float) -> bool:
    """Put a dead message back in the queue (a new retry budget from now); True if it was dead."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.state == DEAD)
        .values(state=PENDING, attempts=0, next_attempt_at=now, created_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return getattr(result, "rowcount", 0) == 1


__all__ = ["Dispatcher", "LEASE_S", "backoff", "message_of", "replay"]
