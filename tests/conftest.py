"""Shared fixtures: the embedded chain, anvil, PostgreSQL and a deployed escrow world."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from bench.world import World, make_world
from contracts.chain import AnvilNode, Chain, embedded_chain

# No Hypothesis test asserts a duration (speed is the benchmarks' business), and CI shares two
# cores with other work: an example that takes 400 ms is not a failure (a fresh-clone run
# failed test_limits on the default 200-ms deadline).
settings.register_profile("kameng", deadline=None)
settings.load_profile("kameng")

POSTGRES_ADMIN_URL = os.environ.get(
    "KAMENG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture()
def chain() -> Chain:
    """A fresh in-process eth-tester chain."""
    return embedded_chain()


@pytest.fixture()
def world(chain: Chain) -> World:
    """A deployed escrow with roles, an authorized supplier and three buyers, on eth-tester."""
    return make_world(chain)


@pytest.fixture()
def anvil() -> Iterator[Chain]:
    """An anvil node on a free loopback port (automine), stopped afterwards."""
    with AnvilNode() as node_chain:
        yield node_chain


@pytest.fixture()
def anvil_node() -> Iterator[AnvilNode]:
    """The anvil node itself, for tests that need its URL or process."""
    node = AnvilNode()
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema on the local server, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
