"""Crash recovery between the vault's database write and its commitBatch transaction.

The upload is stored as `pending` with its commitBatch queued with the chain gateway, which
stores the signed bytes before anything is broadcast. Each test kills the upload at one point
(an exception standing in for the process dying) and checks that `recover_pending` ends in
exactly one committed batch, or in a clean abandon."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.delivery.agent import DeliveryAgent
from backend.errors import ChainUnavailable
from backend.gateway.gateway import Gateway
from backend.models import Code, Upload
from backend.vault.service import recover_pending, upload_codes
from bench.world import World, demo_codes, make_world
from contracts.chain import AnvilNode, Chain
from tests.backend.engine_delivery import assert_delivered_once, buy
from tests.backend.engine_helpers import engine_settings


class Crash(BaseException):
    """Stands for the process dying."""


def _listing(world: World) -> int:
    lid, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    world.escrow.deposit_bond(world.supplier, 10**18)
    return lid


def _crash_upload(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    lid: int,
    where: str,
    data: bytes,
) -> None:
    """Run an upload that dies in the chain gateway, before or after broadcasting its signed
    commitBatch (the gateway's crash points ``signed`` and ``sent``)."""
    point = {"before-broadcast": "signed", "after-broadcast": "sent"}[where]

    def dying(_gateway: Gateway, at: str) -> None:
        if at == point:
            raise Crash(where)

    with monkeypatch.context() as m:
        m.setattr(Gateway, "_crash", dying)
        with sessions() as session, pytest.raises(Crash):
            upload_codes(session, world.escrow, world.supplier, lid, data, settings)


def _upload_states(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.execute(select(Upload.state).order_by(Upload.id)).scalars())


def _code_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.execute(select(func.count()).select_from(Code)).scalar_one())


@pytest.mark.parametrize("where", ["before-broadcast", "after-broadcast"])
def test_recovery_commits_exactly_one_batch(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    where: str,
) -> None:
    lid = _listing(world)
    codes = demo_codes(12)
    _crash_upload(monkeypatch, world, sessions, settings, lid, where, b"\n".join(codes))
    assert _upload_states(sessions) == ["pending"]
    assert world.escrow.call("getListing", lid)[9] == (1 if where == "after-broadcast" else 0)

    with sessions() as session:
        (result,) = recover_pending(session, world.escrow, settings)
    assert result.state == "committed" and result.batch_index == 0
    assert world.escrow.call("getListing", lid)[9] == 1  # one batch, never two
    assert world.escrow.batch(lid, 0) == (result.root, 0, 12)
    with sessions() as session:
        assert recover_pending(session, world.escrow, settings) == []  # nothing left

    # The recovered stock sells and delivers like any other.
    bought = buy(world.escrow, world.buyers[0], lid, 3)
    DeliveryAgent(settings, sessions, world.escrow, world.delivery_key).drain()
    assert_delivered_once(world.escrow, sessions, [bought])


def test_lost_transaction_is_abandoned_and_the_file_can_be_uploaded_again(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    lid = _listing(world)
    data = b"\n".join(demo_codes(5))
    _crash_upload(monkeypatch, world, sessions, settings, lid, "before-broadcast", data)
    world.escrow.update_listing(world.supplier, lid, 10**15, True)  # takes the stored nonce
    with sessions() as session:
        (result,) = recover_pending(session, world.escrow, settings)  # no supplier key given
    assert result.state == "abandoned"
    assert _code_count(sessions) == 0
    with sessions() as session:
        again = upload_codes(session, world.escrow, world.supplier, lid, data, settings)
    assert again.state == "committed" and again.first_index == 0


def test_lost_transaction_is_signed_again_when_the_supplier_key_is_given(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    lid = _listing(world)
    _crash_upload(
        monkeypatch, world, sessions, settings, lid, "before-broadcast", b"\n".join(demo_codes(5))
    )
    world.escrow.update_listing(world.supplier, lid, 10**15, True)
    with sessions() as session:
        (result,) = recover_pending(session, world.escrow, settings, world.supplier)
    assert result.state == "committed" and result.first_index == 0
    assert world.escrow.batch(lid, 0)[0] == result.root


def test_next_upload_finishes_a_pending_one_first(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    lid = _listing(world)
    _crash_upload(
        monkeypatch, world, sessions, settings, lid, "before-broadcast", b"\n".join(demo_codes(4))
    )
    with sessions() as session:
        second = upload_codes(
            session,
            world.escrow,
            world.supplier,
            lid,
            b"\n".join(demo_codes(3, start=4)),
            settings,
        )
    assert _upload_states(sessions) == ["committed", "committed"]
    assert (second.first_index, second.batch_index) == (4, 1)


@pytest.fixture()
def anvil_world() -> Iterator[tuple[AnvilNode, Chain, World]]:
    node = AnvilNode()
    chain = node.start()
    try:
        yield node, chain, make_world(chain)
    finally:
        node.stop()


def test_node_down_stores_nothing_and_says_retry(
    anvil_world: tuple[AnvilNode, Chain, World], sessions: sessionmaker[Session]
) -> None:
    node, _, world = anvil_world
    settings = engine_settings()
    lid = _listing(world)
    node.stop()
    with sessions() as session, pytest.raises(ChainUnavailable) as exc:
        upload_codes(session, world.escrow, world.supplier, lid, b"A-1\nA-2", settings)
    assert exc.value.status_code == 503 and exc.value.retry_after > 0
    assert _upload_states(sessions) == [] and _code_count(sessions) == 0


def test_batch_built_for_taken_indexes_is_refused_by_the_chain(
    anvil_world: tuple[AnvilNode, Chain, World], sessions: sessionmaker[Session]
) -> None:
    """If another commitBatch mines first, the upload's leaves bind indexes that are now taken:
    the chain refuses the batch (EscrowBatchOutOfOrder) and the vault drops its codes."""
    _, chain, world = anvil_world
    settings = engine_settings(commit_wait_seconds=0.3)
    lid = _listing(world)
    chain.make_request("evm_setAutomine", [False])
    world.escrow.tx.send(  # an out-of-band batch, still in the pool
        world.supplier,
        world.escrow.contract.functions.commitBatch(lid, b"\x01" * 32, 2, 0),
        gas=200_000,
        wait=False,
    )
    with sessions() as session:
        result = upload_codes(
            session, world.escrow, world.supplier, lid, b"\n".join(demo_codes(3)), settings
        )
    assert result.state == "pending"
    chain.make_request("evm_mine", [])
    chain.make_request("evm_setAutomine", [True])
    with sessions() as session:
        (recovered,) = recover_pending(session, world.escrow, settings)
        upload = session.get(Upload, recovered.upload_id)
        assert upload is not None and "EscrowBatchOutOfOrder" in (upload.error or "")
    assert recovered.state == "abandoned"
    assert _code_count(sessions) == 0
    listing = world.escrow.listing(lid)
    assert (listing["committed"], listing["batch_count"]) == (2, 1)  # only the other batch


def test_delivery_agent_finishes_an_upload_left_pending(
    monkeypatch: pytest.MonkeyPatch, world: World, sessions: sessionmaker[Session]
) -> None:
    settings = engine_settings(commit_wait_seconds=0)
    lid = _listing(world)
    _crash_upload(
        monkeypatch, world, sessions, settings, lid, "before-broadcast", b"\n".join(demo_codes(4))
    )
    agent = DeliveryAgent(settings, sessions, world.escrow, world.delivery_key)
    agent.run_once()
    assert _upload_states(sessions) == ["committed"]
    bought = buy(world.escrow, world.buyers[0], lid, 4)
    agent.drain()
    assert_delivered_once(world.escrow, sessions, [bought])


def test_concurrent_uploads_of_one_supplier_all_commit(
    anvil_world: tuple[AnvilNode, Chain, World], sessions: sessionmaker[Session]
) -> None:
    """Two API requests at once must not sign with the same nonce or the same indexes."""
    import threading

    _, _, world = anvil_world
    settings = engine_settings()
    listings = [_listing(world), _listing(world)]
    targets = [listings[0], listings[1], listings[0]]
    results: list[str] = []
    errors: list[BaseException] = []

    def upload(n: int, lid: int) -> None:
        try:
            with sessions() as session:
                r = upload_codes(
                    session,
                    world.escrow,
                    world.supplier,
                    lid,
                    b"\n".join(demo_codes(20, start=100 * n)),
                    settings,
                )
            results.append(r.state)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n, lid)) for n, lid in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == ["committed"] * 3
    assert [world.escrow.call("getListing", lid)[1] for lid in listings] == [40, 20]
