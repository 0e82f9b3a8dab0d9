"""Load compiled contract artifacts (ABI, bytecode, storage layout). The only place Python
reads them.

Artifacts are committed, so running kameng needs no node and no compiler; `kameng compile`
rebuilds them, and a test fails when they do not match the sources. Artifacts built before the
compiler's ``storageLayout`` output was selected lack it: they load, and only asking for the
layout (`Artifact.require_storage_layout`) fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from contracts.compiler import ARTIFACTS_DIR, CONTRACTS, source_hash
from contracts.errors import StaleArtifactsError


@dataclass(frozen=True)
class Artifact:
    """A compiled contract.

    Attributes:
        storage_layout: The compiler's ``storageLayout`` output (``{"storage": [...],
            "types": {...}}``), or None in an artifact built before it was selected.
    """

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str
    source_hash: str
    storage_layout: dict[str, Any] | None = None

    def require_storage_layout(self) -> dict[str, Any]:
        """The compiler's storage layout of this contract.

        Raises:
            StaleArtifactsError: the artifact has none (built by an older kameng); run
                `kameng compile --force`.
        """
        if self.storage_layout is None:
            raise StaleArtifactsError(
                f"the artifact of {self.name} has no storageLayout (it was built before kameng "
                "recorded storage layouts); run `kameng compile --force`"
            )
        return self.storage_layout


def runtime_code_hash(name: str) -> bytes:
    """keccak256 of a contract's runtime bytecode as this build deploys it (what
    ``eth_getCode`` returns at its address: the escrow has no immutables)."""
    from eth_utils import keccak

    code = load(name).deployed_bytecode
    return bytes(keccak(bytes.fromhex(code.removeprefix("0x"))))


@cache
def load(name: str) -> Artifact:
    """Load one contract's artifact.

    Raises:
        StaleArtifactsError: the artifact is missing; run `kameng compile`.
    """
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.exists():
        raise StaleArtifactsError(f"no artifact for {name} at {path}; run `kameng compile`")
    return read_artifact(path)


def read_artifact(path: Path) -> Artifact:
    """Read an artifact file (uncached; `load` reads ours by contract name).

    Args:
        path: A JSON file as `contracts.compiler.build` writes it. ``storageLayout`` may be
            absent (an artifact built before it was recorded).

    Raises:
        KeyError: a required key is missing.
    """
    data = json.loads(path.read_text())
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler=data["compiler"],
        source_hash=data["sourceHash"],
        storage_layout=data.get("storageLayout"),
    )


def artifacts_current() -> bool:
    """Whether every artifact exists and was built from the current sources."""
    wanted = source_hash()
    for name in CONTRACTS:
        path = ARTIFACTS_DIR / f"{name}.json"
        if not path.exists():
            return False
        if json.loads(path.read_text()).get("sourceHash") != wanted:
            return False
    return True


def escrow_abi() -> list[dict[str, Any]]:
    """The CodeEscrow ABI."""
    return load("CodeEscrow").abi
