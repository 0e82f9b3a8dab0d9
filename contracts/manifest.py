"""The deployment manifest: where an escrow lives, so that nobody types an address again.

`kameng deploy` writes it; `kameng serve`, `kameng index` and `kameng keeper` read it
(``--manifest PATH`` or ``KAMENG_MANIFEST``) for the escrow's address and the block to index
from, and check it against the node before doing anything: the chain id must match and the code
at the address must be the committed artifact's runtime bytecode.

The file is JSON::

    {"kameng_manifest": 1, "chain_id": 31337, "escrow": "0x…", "deploy_block": 1,
     "deploy_tx": "0x…", "deployer": "0x…", "artifact": {"name": "CodeEscrow",
     "runtime_code_keccak": "0x…", "source_hash": "…", "compiler": "…"},
     "roles": {"admin": "0x…", "rights_admins": […], "arbiters": […], "pausers": […]},
     "fee_recipient": "0x…", "created_at": "2026-12-02T09:00:00Z"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import is_address, keccak, to_checksum_address

from contracts.artifacts import load, runtime_code_hash
from contracts.errors import KamengError

if TYPE_CHECKING:
    from contracts.chain import Chain

VERSION = 1


class ManifestError(KamengError):
    """A manifest is unreadable, malformed, or does not match the node it is used with."""


@dataclass(frozen=True)
class Roles:
    """Who holds which role at deployment (the default admin moves only in two steps)."""

    admin: str
    rights_admins: list[str] = field(default_factory=list)
    arbiters: list[str] = field(default_factory=list)
    pausers: list[str] = field(default_factory=list)

    def single_key(self) -> bool:
        """Whether one account holds every role."""
        everyone = {self.admin, *self.rights_admins, *self.arbiters, *self.pausers}
        return len(everyone) == 1


@dataclass(frozen=True)
class Manifest:
    """One deployment of the escrow."""

    chain_id: int
    escrow: str
    deploy_block: int
    deploy_tx: str
    deployer: str
    roles: Roles
    fee_recipient: str
    created_at: str
    artifact: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The manifest as the JSON file holds it."""
        return json.dumps({"kameng_manifest": VERSION, **asdict(self)}, indent=2) + "\n"

    def write(self, path: Path) -> None:
        """Write it to `path` (folders made as needed; a manifest holds no secret)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(self.to_json())
        temp.replace(path)

    def check_chain(self, chain: Chain, where: str = "the node") -> None:
        """Refuse a node on another chain or an address without this build's escrow code.

        Raises:
            ManifestError: what does not match, and what to do.
        """
        if chain.chain_id != self.chain_id:
            raise ManifestError(
                f"the manifest is for chain {self.chain_id}, but {where} is chain "
                f"{chain.chain_id}: use that chain's RPC URL or its own manifest"
            )
        code = bytes(chain.w3.eth.get_code(to_checksum_address(self.escrow)))
        if not code:
            raise ManifestError(
                f"no contract at {self.escrow} on chain {self.chain_id}: the manifest names a "
                "deployment this node does not have (a reset development node?); deploy again"
            )
        if bytes(keccak(code)) != runtime_code_hash("CodeEscrow"):
            raise ManifestError(
                f"the code at {self.escrow} is not this build's CodeEscrow artifact: this kameng "
                "version does not match the deployment"
            )


def artifact_summary() -> dict[str, str]:
    """What the manifest records of the artifact it deployed."""
    art = load("CodeEscrow")
    return {
        "name": art.name,
        "runtime_code_keccak": "0x" + runtime_code_hash("CodeEscrow").hex(),
        "source_hash": art.source_hash,
        "compiler": art.compiler,
    }


def _address(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not is_address(value):
        raise ManifestError(f"{path}: {key!r} must be an address, not {value!r}")
    return str(to_checksum_address(value))


def _addresses(data: dict[str, Any], key: str, path: Path) -> list[str]:
    values = data.get(key, [])
    if not isinstance(values, list):
        raise ManifestError(f"{path}: roles.{key} must be a list of addresses")
    return [_address({"a": v}, "a", path) for v in values]


def read_manifest(path: Path) -> Manifest:
    """Read and check a manifest's shape.

    Raises:
        ManifestError: it cannot be read or a field is missing or malformed (named).
    """
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ManifestError(f"{path} is not a manifest (not JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("kameng_manifest") != VERSION:
        raise ManifestError(
            f"{path} is not a kameng deployment manifest (version {VERSION}); "
            "`kameng deploy` writes one"
        )
    for key in ("chain_id", "deploy_block"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise ManifestError(f"{path}: {key!r} must be a whole number")
    roles = data.get("roles")
    if not isinstance(roles, dict):
        raise ManifestError(f"{path}: 'roles' is missing")
    return Manifest(
        chain_id=int(data["chain_id"]),
        escrow=_address(data, "escrow", path),
        deploy_block=int(data["deploy_block"]),
        deploy_tx=str(data.get("deploy_tx", "")),
        deployer=_address(data, "deployer", path),
        roles=Roles(
            admin=_address(roles, "admin", path),
            rights_admins=_addresses(roles, "rights_admins", path),
            arbiters=_addresses(roles, "arbiters", path),
            pausers=_addresses(roles, "pausers", path),
        ),
        fee_recipient=_address(data, "fee_recipient", path),
        created_at=str(data.get("created_at", "")),
        artifact={str(k): str(v) for k, v in dict(data.get("artifact") or {}).items()},
    )


__all__ = ["Manifest", "ManifestError", "Roles", "artifact_summary", "read_manifest"]
