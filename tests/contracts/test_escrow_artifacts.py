"""Committed artifacts: current with the sources, and byte-identical to a fresh compile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contracts import compiler
from contracts.artifacts import artifacts_current, load
from contracts.compiler import ARTIFACTS_DIR, CONTRACTS, compile_sources, source_hash


def test_committed_artifacts_match_the_sources() -> None:
    assert artifacts_current(), "artifacts are stale: run `kameng compile` and commit them"
    wanted = source_hash()
    for name in CONTRACTS:
        data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert data["sourceHash"] == wanted
        assert data["contractName"] == name


def test_an_edited_source_makes_the_artifacts_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staleness check sees an edit: run it against a copy of the sources."""
    shutil.copytree(compiler.SOURCES_DIR, tmp_path / "contracts" / "src")
    shutil.copy(compiler.ROOT / "package.json", tmp_path / "package.json")
    monkeypatch.setattr(compiler, "ROOT", tmp_path)
    monkeypatch.setattr(compiler, "SOURCES_DIR", tmp_path / "contracts" / "src")
    assert artifacts_current()  # an exact copy is still current
    source = tmp_path / "contracts" / "src" / "CodeEscrow.sol"
    source.write_text(source.read_text() + "\n// an edit\n")
    assert not artifacts_current()


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


def test_fresh_compile_equals_committed_artifacts() -> None:
    """Compile every contract now with the pinned npm solc (needs node and node_modules) and
    compare with what is committed. One test, so that xdist compiles once."""
    fresh = compile_sources()
    assert sorted(fresh) == sorted(CONTRACTS)
    mismatches = []
    for name in CONTRACTS:
        committed, built = load(name), fresh[name]
        for key, have in (
            ("abi", committed.abi),
            ("bytecode", committed.bytecode),
            ("deployedBytecode", committed.deployed_bytecode),
            ("storageLayout", committed.storage_layout),
            ("compiler", committed.compiler),
            ("sourceHash", committed.source_hash),
        ):
            if built[key] != have:
                mismatches.append(f"{name}.{key}")
    assert not mismatches, f"committed artifacts differ from a fresh compile: {mismatches}"
