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

#: Test files measured the longest, longest first (per-file sums of the 80 slowest durations of a
#: full run on 2026-12-02).
#: `pytest_collection_modifyitems` runs them before every other file, and scripts/test passes
#: ``--no-loadscope-reorder`` so that xdist hands files out in this order: the three workers then
#: start on the long files and end together on short ones. xdist's default order (most tests
#: first) left files of one or two long tests, such as the order rules' Hypothesis run, to the
#: end, where one worker ran them while the others were done. A file not named here runs after
#: these; a name here that no longer exists stops the run. Refresh the list when a file grows.
LONGEST_FIRST = (
    "integration/test_api_schemathesis.py",
    "contracts/test_order_rules.py",
    "backend/test_cli_supplier.py",
    "backend/test_evidence_mirror.py",
    "integration/test_bench_quick_throughput.py",
    "integration/test_web_journeys.py",
    "integration/test_bench_quick_api.py",
    "contracts/test_escrow_tokens.py",
    "integration/test_serve_failover.py",
    "integration/test_bench_quick.py",
    "integration/test_bench_quick_web.py",
    "backend/test_notify_served.py",
    "backend/test_evidence_disclosure.py",
    "integration/test_web_links.py",
    "backend/test_vault_own_key_upload.py",
    "integration/test_web_settle.py",
    "indexer/test_apply.py",
    "integration/test_operator_cli.py",
    "integration/test_web_operator.py",
    "integration/test_web_operator_settings.py",
    "integration/test_web_phone_width.py",
    "integration/test_web_failures.py",
    "integration/test_delivery_sigkill.py",
    "backend/test_api_limits.py",
    "integration/test_serve_embedded.py",
    "integration/test_web_i18n.py",
    "integration/test_nasty_inputs.py",
    "integration/test_serve_supervised.py",
    "integration/test_indexer_takeover.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of `LONGEST_FIRST` first, in its order; the rest keep theirs."""
    tests_dir = os.path.dirname(__file__)
    gone = [name for name in LONGEST_FIRST if not os.path.exists(os.path.join(tests_dir, name))]
    if gone:  # a renamed file would silently fall back to the end
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names missing files: {gone}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        relative = os.path.relpath(str(item.path), tests_dir).replace(os.sep, "/")
        return rank.get(relative, len(rank))

    items.sort(key=key)  # stable: the order within a file, and among the rest, is kept


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
