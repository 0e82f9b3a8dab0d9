"""Committed artifacts: current with the sources, and byte-identical to a fresh compile."""

from __future__ import annotations

import json

import pytest

from contracts.artifacts import artifacts_current, load
from contracts.compiler import ARTIFACTS_DIR, CONTRACTS, compile_sources, source_hash


def test_committed_artifacts_match_the_sources() -> None:
    assert artifacts_current(), "artifacts are stale: run `kameng compile` and commit them"
    wanted = source_hash()
    for name in CONTRACTS:
        data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert data["sourceHash"] == wanted
        assert data["contractName"] == name


def test_artifact_abi_declares_every_interface_error_and_event() -> None:
    abi = load("CodeEscrow").abi
    errors = {i["name"] for i in abi if i["type"] == "error"}
    events = {i["name"] for i in abi if i["type"] == "event"}
    interface = (ARTIFACTS_DIR.parent / "src" / "interfaces" / "ICodeEscrow.sol").read_text()
    declared_errors = {
        line.split("error ")[1].split("(")[0]
        for line in interface.splitlines()
        if line.strip().startswith("error ")
    }
    declared_events = {
        line.split("event ")[1].split("(")[0]
        for line in interface.splitlines()
        if line.strip().startswith("event ")
    }
    assert declared_errors and declared_errors <= errors
    assert declared_events and declared_events <= events


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict[str, object]]:
    """Every contract compiled now, with the pinned npm solc (needs node and node_modules)."""
    return compile_sources()


@pytest.mark.parametrize("name", CONTRACTS)
def test_fresh_compile_equals_committed_artifact(
    fresh: dict[str, dict[str, object]], name: str
) -> None:
    committed = load(name)
    built = fresh[name]
    assert built["abi"] == committed.abi
    assert built["bytecode"] == committed.bytecode
    assert built["deployedBytecode"] == committed.deployed_bytecode
    assert built["compiler"] == committed.compiler
    assert built["sourceHash"] == committed.source_hash
