"""Issue 13, the keeper, and issue 12, the chain gateway it sends through; on SQLite and
PostgreSQL, on the embedded chain.

- due orders settle with nobody clicking, in one batch, and the supplier is paid once;
- a keeper killed after signing (the bytes stored, nothing broadcast) or after broadcasting
  settles every due order exactly once when restarted;
- a dispute nobody ruled is resolved after its arbitration deadline;
- an intent that would revert fails with the contract's error and spends no nonce; enqueueing
  is idempotent by key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from backend.chaintx import encode_call
from backend.gateway.gateway import enqueue, outcome
from backend.gateway.models import ChainTx, TxState
from contracts.encoding import Order, OrderState
from contracts.order_rules import Terms, complete
from tests.backend.api_helpers import Bought, Served, backend_settings, database, poll, serve


class Crash(Exception):
    """A simulated kill."""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    # No keeper thread: the tests drive it by hand, killing it where they want.
    settings = backend_settings(notify=False)
    with database(request.param) as url, serve(settings, database_url=url, buyers=3) as s:
        s.upload(40)
        yield s


def _delivered(served: Served, n: int, quantity: int = 1) -> list[Bought]:
    bought = [served.buy(served.dev.buyers[i % 3], quantity) for i in range(n)]
    for b in bought:
        poll(
            f"order {b.order_id} delivered",
            lambda b=b: served.current(b.order_id, b.buyer).state == OrderState.DELIVERED,
        )
    return bought


def _past_windows(served: Served, bought: list[Bought]) -> int:
    deadline = max(int(served.current(b.order_id, b.buyer).deadline) for b in bought)
    served.runtime.chain.travel_to(deadline + 1)
    served.wait_indexed()
    return served.runtime.chain.timestamp()


def _states(served: Served, bought: list[Bought]) -> list[OrderState]:
    from indexer import models as mirror

    with served.runtime.sessions() as session:
        return [OrderState(session.get(mirror.Order, b.order_id).state) for b in bought]


def _settle_rows(served: Served, ids: set[int]) -> list[ChainTx]:
    with served.runtime.sessions() as session:
        rows = session.scalars(select(ChainTx).where(ChainTx.intent == "settle")).all()
        return [r for r in rows if {int(s) for s in r.subjects.split(",")} & ids]


@pytest.mark.parametrize("kill_at", ["signed", "sent"])
def test_a_killed_keeper_settles_every_due_order_exactly_once(served: Served, kill_at: str) -> None:
    bought = _delivered(served, 3)
    supplier = served.dev.supplier.address
    before = served.escrow.balance_of(supplier)
    now = _past_windows(served, bought)
    keeper = served.runtime.make_keeper()

    def die(point: str) -> None:
        if point == kill_at:
            raise Crash(point)

    keeper.gateway.crash_hook = die
    with pytest.raises(Crash):
        keeper.run_once(now)
    ids = {b.order_id for b in bought}
    (row,) = _settle_rows(served, ids)
    assert row.state == (TxState.SIGNED if kill_at == "signed" else TxState.SENT)
    # Restarted: a new keeper and gateway over the same database.
    again = served.runtime.make_keeper()
    poll("the batch mined", lambda: again.run_once(now) is not None and _mined(served, ids))
    served.wait_indexed()
    assert _states(served, bought) == [OrderState.COMPLETED] * 3
    rows = _settle_rows(served, ids)
    assert len(rows) == 1 and rows[0].state == TxState.MINED and rows[0].nonce == row.nonce
    # Nothing is queued again for orders already settled...
    assert again.run_once(served.runtime.chain.timestamp()).settle_orders == 0
    # ... nor while the mirror lags behind the block that settled them (seen here as the
    # mirror before that block: the orders still Delivered, the checkpoint one block short).
    _as_if_mirror_lagged(served, bought, rows[0])
    paid = sum(complete(Terms.of(b.order)).to_supplier for b in bought)
    assert served.escrow.balance_of(supplier) - before == paid


def _as_if_mirror_lagged(served: Served, bought: list[Bought], row: ChainTx) -> None:
    """Check that `queue_due` skips the settled orders while the mirror lags `row`'s block."""
    from indexer import models as mirror

    keeper = served.runtime.make_keeper()
    with served.runtime.sessions() as session:
        for b in bought:
            session.get(mirror.Order, b.order_id).state = int(OrderState.DELIVERED)
        for checkpoint in session.scalars(select(mirror.Checkpoint)):
            checkpoint.block_number = int(row.block_number) - 1
        session.flush()
        queued = keeper.queue_due(session, served.runtime.chain.timestamp())
        assert queued.settle_orders == 0
        session.rollback()


def _mined(served: Served, ids: set[int]) -> bool:
    return any(r.state == TxState.MINED for r in _settle_rows(served, ids))


def test_a_dispute_nobody_ruled_is_resolved_after_its_deadline(served: Served) -> None:
    from indexer import models as mirror

    (bought,) = _delivered(served, 1)
    order = served.current(bought.order_id, bought.buyer)
    served.escrow.tx.reset_nonce(bought.buyer.address)
    served.escrow.dispute(bought.buyer, bought.order_id, order, "kameng:statement", b"\x02" * 32)
    served.wait_indexed()
    with served.runtime.sessions() as session:
        dispute = session.get(mirror.Dispute, bought.order_id)
        assert dispute is not None
        deadline = int(dispute.arbitration_deadline)
    keeper = served.runtime.make_keeper()
    assert keeper.run_once(served.runtime.chain.timestamp()).resolutions == 0  # not yet
    served.runtime.chain.travel_to(deadline + 1)
    served.wait_indexed()
    now = served.runtime.chain.timestamp()
    assert keeper.run_once(now).resolutions == 1
    poll(
        "the dispute resolved",
        lambda: (
            keeper.run_once(served.runtime.chain.timestamp()) is not None
            and _states(served, [bought]) == [OrderState.RESOLVED]
        ),
    )
    with served.runtime.sessions() as session:
        dispute = session.get(mirror.Dispute, bought.order_id)
        assert dispute is not None and dispute.ruled and dispute.buyer_bps == 5000


def test_an_intent_that_would_revert_fails_named_and_spends_no_nonce(served: Served) -> None:
    (bought,) = _delivered(served, 1)
    keeper = served.runtime.make_keeper()
    sender = keeper.sender
    order = Order.from_record(served.current(bought.order_id, bought.buyer))
    nonce = served.runtime.chain.w3.eth.get_transaction_count(sender)
    with served.runtime.sessions() as session:
        first = enqueue(
            session,
            intent="settle",
            key=f"early:{bought.order_id}",
            sender=sender,
            to=served.escrow.address,
            data=encode_call("settle", [[bought.order_id], [order.as_tuple()]]),
            subjects=[bought.order_id],
        )
        same = enqueue(
            session,
            intent="settle",
            key=f"early:{bought.order_id}",
            sender=sender,
            to=served.escrow.address,
            data=b"",
        )
        assert same.id == first.id  # one intent per key
        session.commit()
    keeper.gateway.run_once()
    with served.runtime.sessions() as session:
        row = outcome(session, f"early:{bought.order_id}")
        assert row is not None and row.state == TxState.FAILED and row.nonce is None
        assert row.error is not None and row.error.startswith("EscrowDeadlineNotReached")
    assert served.runtime.chain.w3.eth.get_transaction_count(sender) == nonce


def test_one_keeper_acts_at_a_time_and_a_standby_takes_over(served: Served) -> None:
    import threading

    postgres = served.runtime.engine.dialect.name == "postgresql"
    chain = served.runtime.chain
    first, second = served.runtime.make_keeper(), served.runtime.make_keeper()
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(
            target=k.run_forever, args=(stop, chain.timestamp, 0.05, chain.chain_id), daemon=True
        )
        for k, stop in zip((first, second), stops, strict=True)
    ]
    try:
        threads[0].start()
        poll("the first keeper active", lambda: first.active)
        threads[1].start()
        if postgres:
            poll("the second keeper standing by", lambda: second.standing_by)
            assert not second.active
            stops[0].set()
            threads[0].join(10)
            poll("the standby taking over", lambda: second.active)
        else:  # SQLite has no advisory locks: one keeper per database is the operator's rule
            poll("the second keeper active", lambda: second.active)
    finally:
        for stop in stops:
            stop.set()
        for t in threads:
            t.join(10)


def test_due_orders_settle_with_nobody_clicking() -> None:
    """The keeper as `kameng serve` runs it: a thread, on its own."""
    with serve(backend_settings(keeper=True, notify=False), buyers=2) as s:
        s.upload(5)
        bought = _delivered(s, 2)
        _past_windows(s, bought)
        poll(
            "the orders settled by the keeper",
            lambda: _states(s, bought) == [OrderState.COMPLETED] * 2,
        )
        ids = {b.order_id for b in bought}
        poll("the keeper to see its batch mined", lambda: _mined(s, ids))
        assert len(_settle_rows(s, ids)) == 1  # one batch for both
