"""One active instance of a singleton worker across processes and machines.

The indexer's writer, the delivery agent, the keeper and the notification producer each must
act alone on a database. On PostgreSQL each holds a session-level advisory lock for its role
(`indexer.lock`, keyed by role, chain, escrow, database and schema) on a connection of its own
while it works; every other instance stands by and retries. A holder that dies (killed, its
machine gone) loses its session and so its lock, and a standby takes over within one poll. A
holder whose lock connection breaks stops working at once (its work may no longer be its own)
and stands for election again. On SQLite there is one process by rule, and the worker just runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


@dataclass
class Seat:
    """Where an elected worker stands: ``active`` while it holds the role, ``standing_by``
    while another instance does."""

    role: str
    active: bool = False
    standing_by: bool = False
    terms: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def run_elected(
    engine: Engine,
    seat: Seat,
    *,
    chain_id: int,
    escrow: str,
    stop: threading.Event,
    work: Callable[[threading.Event], None],
    poll_s: float = 0.5,
) -> None:
    """Run `work(term_over)` whenever this instance holds `seat.role`, until `stop`.

    `work` must return soon after its event is set: when `stop` is set, or when the lock's
    connection is lost. On SQLite `work(stop)` runs once, at once.

    Args:
        engine: The database the role is elected on.
        seat: The role, and where this instance stands (read by health reports and tests).
        chain_id: The chain (part of the lock's key).
        escrow: The escrow (part of the lock's key).
        stop: Set to stop for good.
        work: The worker's loop.
        poll_s: How often a standby retries, and how often a holder checks its lock.
    """
    if engine.dialect.name != "postgresql":
        seat.active = True
        try:
            work(stop)
        finally:
            seat.active = False
        return
    from indexer.lock import lock_key, release, try_acquire

    while not stop.is_set():
        try:
            conn = engine.connect()
        except SQLAlchemyError:
            log.warning("%s: the database is unreachable; standing by", seat.role)
            stop.wait(poll_s)
            continue
        try:
            key = lock_key(conn, chain_id, escrow, role=seat.role)
            if not try_acquire(conn, key):
                if not seat.standing_by:
                    log.info("another %s is active on this database: standing by", seat.role)
                seat.standing_by = True
                stop.wait(poll_s)
                continue
            seat.standing_by, seat.active = False, True
            seat.terms += 1
            log.info("%s: active (term %d)", seat.role, seat.terms)
            _hold(conn, seat, stop, work, poll_s)
            with contextlib.suppress(SQLAlchemyError):  # a gone session took its lock along
                release(conn, key)
        except SQLAlchemyError:
            log.warning("%s: lost the database; standing for election again", seat.role)
        finally:
            seat.active = False
            conn.close()
            if not stop.is_set():
                stop.wait(poll_s)


def _hold(
    conn: object,
    seat: Seat,
    stop: threading.Event,
    work: Callable[[threading.Event], None],
    poll_s: float,
) -> None:
    """Run `work` while the lock's connection answers; end the term when it does not."""
    term_over = threading.Event()

    def watch() -> None:
        while not term_over.is_set():
            if stop.wait(poll_s):
                break
            try:
                conn.execute(text("SELECT 1"))  # type: ignore[attr-defined]
                conn.commit()  # type: ignore[attr-defined]
            except SQLAlchemyError:
                log.error("%s: the lock's connection broke; stopping this term", seat.role)
                break
        term_over.set()

    watcher = threading.Thread(target=watch, name=f"kameng-{seat.role}-lock", daemon=True)
    watcher.start()
    try:
        work(term_over)
    finally:
        term_over.set()
        watcher.join()


__all__ = ["Seat", "run_elected"]
