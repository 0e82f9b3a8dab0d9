"""`kameng deploy`: deploy CodeEscrow to any EVM node and write its deployment manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from backend.cli.app import app, console, err_console
from backend.cli.common import PasswordFileOption, describe_error, fail, unlock

AddressList = Annotated[list[str] | None, typer.Option(metavar="ADDRESS")]


def default_manifest(chain_id: int) -> Path:
    """Where a deployment's manifest goes by default: ``<data dir>/deployments/CHAIN_ID.json``."""
    from backend.keystore import data_dir

    return data_dir() / "deployments" / f"{chain_id}.json"


def _addresses(values: list[str] | None, option: str) -> list[str]:
    from eth_utils import is_address, to_checksum_address

    out: list[str] = []
    for v in values or []:
        if not is_address(v):
            raise fail(f"{option} {v!r} is not an address (0x and 40 hex digits)", 2)
        out.append(str(to_checksum_address(v)))
    return out


@app.command("deploy")
def deploy_cmd(
    rpc_url: Annotated[
        str, typer.Option("--rpc-url", envvar="KAMENG_RPC_URL", help="JSON-RPC URL of the node.")
    ],
    keystore: Annotated[
        str,
        typer.Option(
            "--keystore",
            envvar="KAMENG_KEYSTORE",
            help="The deployer's keystore (name or path): it becomes the admin.",
        ),
    ],
    password_file: PasswordFileOption = None,
    rights_admin: AddressList = None,
    arbiter: AddressList = None,
    pauser: AddressList = None,
    fee_recipient: Annotated[
        str | None,
        typer.Option(help="Who receives the platform's fees (default: the admin)."),
    ] = None,
    fee_bps: Annotated[
        int, typer.Option(min=0, max=10_000, help="Platform fee in basis points.")
    ] = 200,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            help="Where to write the manifest (default: <data dir>/deployments/CHAIN_ID.json).",
        ),
    ] = None,
) -> None:
    """Deploy CodeEscrow from a keystore, hand each role to its own account, check the code
    on-chain equals the committed artifact, and write the deployment manifest that
    `kameng serve`, `kameng index` and `kameng keeper` read (--manifest).

    Roles: the keystore's account is the admin (DEFAULT_ADMIN_ROLE, which moves only in two
    steps). --rights-admin (licences), --arbiter (disputes; repeat for several) and --pauser
    each go to the accounts named, and the admin gives up that role; a role nobody is named
    for stays with the admin, and a deploy that leaves one key holding every role says so.
    """
    from contracts.chain import rpc_chain
    from contracts.client import EscrowClient, EscrowConfig, deploy_contract
    from contracts.errors import ChainError, ContractRevertError, KamengError
    from contracts.manifest import Manifest, Roles, artifact_summary

    named = {
        "RIGHTS_ADMIN_ROLE": _addresses(rights_admin, "--rights-admin"),
        "ARBITER_ROLE": _addresses(arbiter, "--arbiter"),
        "PAUSER_ROLE": _addresses(pauser, "--pauser"),
    }
    recipient = _addresses([fee_recipient], "--fee-recipient")[0] if fee_recipient else None
    try:
        chain = rpc_chain(rpc_url)
    except ChainError as exc:
        raise fail(str(exc), 2) from exc
    deployer = unlock(keystore, password_file)
    balance = int(chain.w3.eth.get_balance(deployer.address))
    if balance == 0:
        raise fail(
            f"the deployer {deployer.address} has no gas money on chain {chain.chain_id}: "
            "fund it, then deploy again",
            2,
        )
    config = EscrowConfig(fee_recipient=recipient or deployer.address, fee_bps=fee_bps)
    console.print(
        f"deploying CodeEscrow on chain {chain.chain_id} from {deployer.address}…", soft_wrap=True
    )
    try:
        address, res = deploy_contract(
            chain, deployer, "CodeEscrow", deployer.address, config.as_tuple()
        )
    except ContractRevertError as exc:
        raise fail(f"the deployment reverted: {exc}; nothing was deployed") from exc
    except KamengError as exc:
        raise fail(f"the deployment failed: {describe_error(exc)}; nothing was deployed") from exc
    console.print(f"  [green]✓[/green] CodeEscrow at {address} (block {res.block_number})")
    target = manifest or default_manifest(chain.chain_id)
    held: dict[str, list[str]] = {role: [deployer.address] for role in named}

    def record() -> Manifest:
        made = Manifest(
            chain_id=chain.chain_id,
            escrow=address,
            deploy_block=res.block_number,
            deploy_tx=res.tx_hash,
            deployer=deployer.address,
            roles=Roles(
                admin=deployer.address,
                rights_admins=held["RIGHTS_ADMIN_ROLE"],
                arbiters=held["ARBITER_ROLE"],
                pausers=held["PAUSER_ROLE"],
            ),
            fee_recipient=config.fee_recipient,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            artifact=artifact_summary(),
        )
        made.write(target)
        return made

    # Written at once, so a failure below never loses where the escrow is.
    made = record()
    escrow = EscrowClient(chain, address)
    for role, accounts in named.items():
        try:
            for account in accounts:
                escrow.grant_role(deployer, role, account)
                held[role] = sorted({*held[role], account})
                console.print(f"  [green]✓[/green] {role} → {account}")
            if accounts and deployer.address not in accounts:
                escrow.revoke_role(deployer, role, deployer.address)
                held[role] = [a for a in held[role] if a != deployer.address]
                console.print(f"  [green]✓[/green] the admin gives up {role}")
        except KamengError as exc:
            record()
            raise fail(
                f"the escrow is deployed at {address} and its manifest is {target}, but handing "
                f"over {role} failed ({describe_error(exc)}); the manifest lists who holds each "
                "role now"
            ) from exc
        made = record()
    made.check_chain(chain, rpc_url)  # the code on-chain is the committed artifact
    roles = made.roles
    for role, holders in (
        ("RIGHTS_ADMIN_ROLE", roles.rights_admins),
        ("ARBITER_ROLE", roles.arbiters),
        ("PAUSER_ROLE", roles.pausers),
    ):
        if not all(escrow.has_role(role, a) for a in holders):
            raise fail(f"{role} is not held as the manifest says after the deploy; check the node")
    rows = [
        ("chain", str(chain.chain_id)),
        ("escrow", address),
        ("deployed", f"block {res.block_number}, tx {res.tx_hash}"),
        ("code", "equals the committed artifact, keccak " + made.artifact["runtime_code_keccak"]),
        ("admin", roles.admin),
        ("rights admins", ", ".join(roles.rights_admins)),
        ("arbiters", ", ".join(roles.arbiters)),
        ("pausers", ", ".join(roles.pausers)),
        ("fee recipient", f"{config.fee_recipient} ({fee_bps} bps)"),
        ("manifest", f"{target} (give it to kameng serve, index and keeper as --manifest)"),
    ]
    for key, value in rows:
        console.print(f"{key:>14}  {value}", soft_wrap=True)
    if roles.single_key():
        err_console.print(
            "[bold red]WARNING: one key holds every role[/bold red] (admin, rights admin, "
            f"arbiter, pauser: {deployer.address}). Whoever steals it can license anyone, rule "
            "every dispute and pause the market. Hand the roles to separate accounts "
            "(--rights-admin, --arbiter, --pauser) before going live.",
            soft_wrap=True,
        )
