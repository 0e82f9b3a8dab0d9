"""Fixtures for the escrow suite: one prepared chain per module, reverted to a snapshot per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules import `tests.contracts.helpers`; the repository root must be importable for that.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from contracts.chain import embedded_chain  # noqa: E402
from tests.contracts.helpers import Env, make_env  # noqa: E402


@pytest.fixture(scope="module")
def base_env() -> Iterator[Env]:
    """An escrow with roles, an ETH and a USDC listing, funded buyers; built once per module."""
    env = make_env(embedded_chain())
    env.reset()
    yield env


@pytest.fixture()
def env(base_env: Env) -> Iterator[Env]:
    """The module's environment, as it was before any test ran in it."""
    snapshot = base_env.chain.snapshot()
    base_env.reset()
    try:
        yield base_env
    finally:
        base_env.chain.revert(snapshot)
        base_env.reset()
