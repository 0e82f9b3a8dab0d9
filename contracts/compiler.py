"""Compile the Solidity sources with the pinned npm `solc`, through py-solc-x and a node shim.

py-solc-x cannot download compilers on these machines, so `solc_shim.js` stands in for the
solc binary: it answers `--version` and `--standard-json` through solcjs. Artifacts are
written to `contracts/artifacts/`, one JSON file per contract: ABI, bytecode, the compiler's
storage layout (read by `contracts.storage`), the compiler version and the hash of every input,
so a stale artifact is detected without a compiler.

An installed wheel (scripts/build_wheel.py) carries the artifacts but neither the Solidity
sources nor package.json: there `in_checkout` is False and `build` uses the artifacts as they
are, as the wheel's build checked them current.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from contracts.errors import ToolchainError

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
SOURCES_DIR = PACKAGE_DIR / "src"
ARTIFACTS_DIR = PACKAGE_DIR / "artifacts"
SHIM = PACKAGE_DIR / "solc_shim.js"
NODE_MODULES = ROOT / "node_modules"

#: Contracts whose artifacts are written; test-only contracts are under src/test.
CONTRACTS: tuple[str, ...] = (
    "CodeEscrow",
    "TestToken",
    "FeeOnTransferToken",
    "BlocklistToken",
    "ReentrantAttacker",
    "PlainEscrow",
)

SETTINGS: dict[str, Any] = {
    "evmVersion": "prague",
    "optimizer": {"enabled": True, "runs": 400},
    "viaIR": True,
    "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"]},
    },
}


def in_checkout() -> bool:
    """Whether the Solidity sources and package.json are here (a checkout, not a wheel)."""
    return SOURCES_DIR.is_dir() and (ROOT / "package.json").is_file()


def source_files() -> list[Path]:
    """Return every Solidity source of ours, sorted."""
    return sorted(SOURCES_DIR.rglob("*.sol"))


def pinned_versions() -> dict[str, str]:
    """Return the exact npm versions of solc and OpenZeppelin that package.json pins."""
    manifest = json.loads((ROOT / "package.json").read_text())
    deps: dict[str, str] = manifest["dependencies"]
    return {"solc": deps["solc"], "openzeppelin": deps["@openzeppelin/contracts"]}


def source_hash() -> str:
    """Hash our sources, the compiler settings and the pinned dependency versions."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    digest.update(json.dumps(SETTINGS, sort_keys=True).encode())
    digest.update(json.dumps(pinned_versions(), sort_keys=True).encode())
    return "0x" + digest.hexdigest()


def _check_toolchain() -> None:
    if shutil.which("node") is None:
        raise ToolchainError("node is not on PATH; install Node.js 20+ to compile the contracts")
    if not (NODE_MODULES / "solc").is_dir() or not (NODE_MODULES / "@openzeppelin").is_dir():
        raise ToolchainError("node_modules is missing solc or OpenZeppelin; run `npm ci` first")


def compile_sources() -> dict[str, dict[str, Any]]:
    """Compile every source and return artifacts by contract name.

    Raises:
        ToolchainError: node or the npm packages are missing, or the compiler reported errors.
    """
    import solcx  # imported here: only compiling needs it

    _check_toolchain()
    sources = {
        path.relative_to(ROOT).as_posix(): {"content": path.read_text()} for path in source_files()
    }
    request = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    try:
        output = solcx.compile_standard(
            request, solc_binary=str(SHIM), base_path=str(ROOT), allow_empty=True
        )
    except solcx.exceptions.SolcError as exc:  # compiler errors arrive here
        raise ToolchainError(f"solc failed: {exc}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError("solc errors:\n" + "\n".join(e["formattedMessage"] for e in errors))
    version = solcx.wrapper.get_version_str_from_solc_binary(SHIM)
    wanted = source_hash()
    artifacts: dict[str, dict[str, Any]] = {}
    for file_output in output["contracts"].values():
        for name, contract in file_output.items():
            if name not in CONTRACTS:
                continue
            artifacts[name] = {
                "contractName": name,
                "abi": contract["abi"],
                "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                "storageLayout": contract["storageLayout"],
                "compiler": f"solc-js {version}",
                "sourceHash": wanted,
            }
    missing = set(CONTRACTS) - set(artifacts)
    if missing:
        raise ToolchainError(f"compiler produced no output for {sorted(missing)}")
    return artifacts


def build(force: bool = False) -> bool:
    """Compile into `contracts/artifacts/` unless the artifacts already match the sources.

    Args:
        force: Compile even when the artifacts are current.

    Outside a checkout (an installed wheel) there is nothing to compile: the shipped artifacts
    are used as they are.

    Returns:
        True when the compiler ran, False when the cache was current or this is no checkout.

    Raises:
        ToolchainError: `force` outside a checkout, or the compiler failed.
    """
    from contracts.artifacts import artifacts_current

    if not in_checkout():
        if force:
            raise ToolchainError(
                "compiling needs a checkout of kameng (contracts/src and package.json); "
                "this installation runs on the contract artifacts it ships"
            )
        return False
    if not force and artifacts_current():
        return False
    artifacts = compile_sources()
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    for name, artifact in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
    return True
