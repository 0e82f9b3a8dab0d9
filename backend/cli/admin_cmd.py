"""`kameng admin`: the operator's and the rights holder's actions on the escrow.

Licences (the 白名单: which supplier may sell which product, with an attestation document
whose hash goes on-chain and whose file is kept in ``<data dir>/attestations``), arbiters, the
platform's fees and windows, allowed tokens, pause, and the platform's fee withdrawal.

Each command signs with ``--keystore`` and finds the escrow through ``--manifest`` (or
``--escrow``), both usually set once in the environment or ``kameng.toml``. Before sending, it
checks the keystore's account holds the role the action needs, so a wrong key gets one line
saying which role and who holds it, and nothing is sent.
"""

from __future__ import annotations

import mimetypes
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eth_utils import is_address, keccak, to_checksum_address

from backend.cli.app import app, console
from backend.cli.common import (
    KeystoreOption,
    ManifestOption,
    PasswordFileOption,
    deployment,
    describe_error,
    fail,
    from_config,
    unlock,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from contracts.client import EscrowClient, TxResult

admin_app = typer.Typer(
    help="Operator and rights-holder actions: licences, arbiters, fees, tokens, pause.",
    no_args_is_help=True,
)
licence_app = typer.Typer(help="Grant and revoke (supplier, product) licences.")
arbiter_app = typer.Typer(help="Appoint and remove arbiters.")
token_app = typer.Typer(help="Allow and disallow payment tokens (ERC-20).")
fees_app = typer.Typer(help="The platform's fee and windows, and its fee income.")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(licence_app, name="licence")
admin_app.add_typer(arbiter_app, name="arbiter")
admin_app.add_typer(token_app, name="token")
admin_app.add_typer(fees_app, name="fees")

ZERO32 = b"\0" * 32
SupplierArg = Annotated[str, typer.Argument(help="The supplier's address.")]
SkuArg = Annotated[str, typer.Argument(help="The product: its name or 0x sku id.")]


def _document_option(help_text: str) -> Any:
    """The ``--attestation FILE`` option (an existing, readable file)."""
    return typer.Option("--attestation", exists=True, dir_okay=False, readable=True, help=help_text)


PublishOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="KAMENG_API_URL",
        help="A kameng server to publish the attestation document to (its store shows it).",
    ),
]


@dataclass
class Target:
    """Where an admin command acts and with which key (unlocked on first use)."""

    rpc_url: str
    manifest: Path | None
    escrow: str | None
    keystore: str | None
    password_file: Path | None
    _client: EscrowClient | None = None
    _account: LocalAccount | None = None

    def client(self) -> EscrowClient:
        """The escrow, found through the manifest or --escrow and checked against the node."""
        from contracts.chain import rpc_chain
        from contracts.client import EscrowClient
        from contracts.errors import ChainError

        if self._client is None:
            found = deployment(self.manifest, self.escrow, 0, self.rpc_url)
            if found is None:
                raise fail("no escrow: pass --manifest (from `kameng deploy`) or --escrow", 2)
            try:
                self._client = EscrowClient(rpc_chain(self.rpc_url), found.escrow)
            except ChainError as exc:
                raise fail(str(exc), 2) from exc
        return self._client

    def account(self) -> LocalAccount:
        """The signing account from --keystore."""
        if self._account is None:
            keystore = from_config(self.keystore, "keystore")
            if keystore is None:
                raise fail("no key: pass --keystore NAME (see `kameng keys list`)", 2)
            self._account = unlock(str(keystore), self.password_file)
        return self._account


def _target(ctx: typer.Context) -> Target:
    target = ctx.obj
    assert isinstance(target, Target)
    return target


@admin_app.callback()
def admin_main(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None,
        typer.Option("--rpc-url", envvar="KAMENG_RPC_URL", help="JSON-RPC URL of the node."),
    ] = None,
    manifest: ManifestOption = None,
    escrow: Annotated[
        str | None,
        typer.Option("--escrow", envvar="KAMENG_ESCROW_ADDRESS", help="The CodeEscrow address."),
    ] = None,
    keystore: KeystoreOption = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Operator and rights-holder actions on the escrow (the options go before the action)."""
    url = from_config(rpc_url, "rpc_url")
    if url is None:
        raise fail("no node: pass --rpc-url or set KAMENG_RPC_URL", 2)
    ctx.obj = Target(str(url), manifest, escrow, keystore, password_file)


def _address(value: str, what: str) -> str:
    if not is_address(value):
        raise fail(f"{what} {value!r} is not an address (0x and 40 hex digits)", 2)
    address = str(to_checksum_address(value))
    if int(address, 16) == 0:
        raise fail(f"{what} cannot be the zero address", 2)
    return address


def _sku(value: str) -> bytes:
    """A product id: 0x and 64 hex digits, or a product name (hashed as the store does)."""
    from contracts.encoding import sku_id

    if value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    return sku_id(value)


def _require(target: Target, role: str, what: str) -> tuple[EscrowClient, LocalAccount]:
    """The escrow and the signer, once the signer is known to hold `role`."""
    escrow, account = target.client(), target.account()
    if not escrow.has_role(role, account.address):
        raise fail(
            f"{account.address} does not hold {role} on escrow {escrow.address}, which {what} "
            "needs: use the keystore of an account that does (the deployment manifest lists "
            "them); nothing was sent",
            2,
        )
    return escrow, account


def _send(what: str, action: TxResult) -> None:
    console.print(
        f"  [green]✓[/green] {what}: tx {action.tx_hash} (block {action.block_number})",
        soft_wrap=True,
    )


def _run(what: str, call: Callable[[], TxResult]) -> TxResult:
    """Send a contract call, turning a revert into one line that names the error."""
    from contracts.errors import KamengError

    try:
        return call()
    except KamengError as exc:
        raise fail(f"{what} failed, nothing changed: {describe_error(exc)}") from exc


@licence_app.command("grant")
def licence_grant(
    ctx: typer.Context,
    supplier: SupplierArg,
    sku: SkuArg,
    attestation: Annotated[
        Path,
        _document_option(
            "The licence document (contract, authorisation letter): its keccak256 goes "
            "on-chain and the file is kept in <data dir>/attestations."
        ),
    ],
    api: PublishOption = None,
    new_account: Annotated[
        bool,
        typer.Option(
            "--new-account",
            help="Licence an address that has never been used on this chain (no balance, no "
            "transaction): refused without this, since it is most often a mistyped address.",
        ),
    ] = False,
) -> None:
    """Licence SUPPLIER to sell SKU, citing an attestation document (RIGHTS_ADMIN_ROLE).

    With --api (or KAMENG_API_URL) the document is then published to that kameng server, so
    that its store shows it and buyers can check it against the hash on-chain."""
    from backend.keystore import data_dir

    who = _address(supplier, "supplier")
    product = _sku(sku)
    document = attestation.read_bytes()
    if not document:
        raise fail(f"{attestation} is empty: the attestation is the licence document itself", 2)
    digest = bytes(keccak(document))
    escrow, account = _require(_target(ctx), "RIGHTS_ADMIN_ROLE", "a licence")
    w3 = escrow.w3
    if not new_account and not (
        w3.eth.get_transaction_count(who) or w3.eth.get_balance(who) or w3.eth.get_code(who)  # type: ignore[arg-type]
    ):
        raise fail(
            f"unknown supplier {who}: no account at that address has ever been used on this "
            "chain (no balance, no transaction); check the address, or pass --new-account if "
            "the supplier has not funded it yet. Nothing was sent",
            2,
        )
    kept = data_dir() / "attestations" / f"0x{digest.hex()}{attestation.suffix}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(attestation, kept)
    res = _run("the licence", lambda: escrow.authorize(account, who, product, digest))
    _send(f"licensed {who} for sku 0x{product.hex()}, attestation 0x{digest.hex()}", res)
    console.print(f"  the document is kept at {kept}", soft_wrap=True)
    if api:
        try:
            _publish(api, document, attestation, who, product)
        except typer.Exit:
            console.print(
                "  the licence stands; publish the document later with "
                "`kameng admin licence publish`",
                soft_wrap=True,
            )
            raise


def _publish(api: str, document: bytes, path: Path, supplier: str, sku: bytes) -> None:
    """Publish an attestation document to the kameng API at `api`; one line either way."""
    from backend.client import ApiError, KamengClient

    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        with KamengClient(api) as client:
            kept = client.publish_attestation(
                document,
                name=path.name,
                media_type=media_type,
                supplier=supplier,
                sku="0x" + sku.hex(),
            )
    except ApiError as exc:
        raise fail(f"the document was not published: {exc}") from exc
    console.print(
        f"  published at {api.rstrip('/')}/attestations/{kept.hash} ({kept.size} bytes, "
        f"{kept.media_type}); the store shows it beside the licence",
        soft_wrap=True,
    )


@licence_app.command("publish")
def licence_publish(
    ctx: typer.Context,
    supplier: SupplierArg,
    sku: SkuArg,
    attestation: Annotated[
        Path,
        _document_option("The document the licence cites (the very file whose hash is on-chain)."),
    ],
    api: PublishOption = None,
) -> None:
    """Publish the document behind SUPPLIER's licence for SKU to a kameng server (no key needed:
    the server checks that the licence on-chain cites the document's keccak256)."""
    if not api:
        raise fail("no server: pass --api URL or set KAMENG_API_URL", 2)
    who = _address(supplier, "supplier")
    product = _sku(sku)
    document = attestation.read_bytes()
    cited = bytes(_target(ctx).client().call("authorization", who, product))
    if cited == ZERO32:
        raise fail(f"{who} holds no licence for sku 0x{product.hex()}: grant it first", 2)
    if cited != bytes(keccak(document)):
        raise fail(
            f"{attestation} hashes to 0x{bytes(keccak(document)).hex()}, but the licence cites "
            f"0x{cited.hex()}: pass the very document the licence was granted with",
            2,
        )
    _publish(api, document, attestation, who, product)


@licence_app.command("revoke")
def licence_revoke(
    ctx: typer.Context,
    supplier: SupplierArg,
    sku: SkuArg,
) -> None:
    """Revoke SUPPLIER's licence for SKU (its listings leave the store; close them too)."""
    who = _address(supplier, "supplier")
    product = _sku(sku)
    escrow, account = _require(_target(ctx), "RIGHTS_ADMIN_ROLE", "a revocation")
    if bytes(escrow.call("authorization", who, product)) == ZERO32:
        raise fail(f"{who} holds no licence for sku 0x{product.hex()}: nothing to revoke", 2)
    res = _run("the revocation", lambda: escrow.authorize(account, who, product, ZERO32))
    _send(f"revoked {who}'s licence for sku 0x{product.hex()}", res)


@arbiter_app.command("add")
def arbiter_add(
    ctx: typer.Context, address: Annotated[str, typer.Argument(help="The arbiter's address.")]
) -> None:
    """Appoint an arbiter (DEFAULT_ADMIN_ROLE)."""
    who = _address(address, "arbiter")
    escrow, account = _require(_target(ctx), "DEFAULT_ADMIN_ROLE", "appointing an arbiter")
    if escrow.has_role("ARBITER_ROLE", who):
        raise fail(f"{who} is an arbiter already", 2)
    _send(
        f"{who} appointed arbiter",
        _run("the appointment", lambda: escrow.grant_role(account, "ARBITER_ROLE", who)),
    )


@arbiter_app.command("remove")
def arbiter_remove(
    ctx: typer.Context, address: Annotated[str, typer.Argument(help="The arbiter's address.")]
) -> None:
    """Remove an arbiter (DEFAULT_ADMIN_ROLE); disputes it has not ruled go to the others."""
    who = _address(address, "arbiter")
    escrow, account = _require(_target(ctx), "DEFAULT_ADMIN_ROLE", "removing an arbiter")
    if not escrow.has_role("ARBITER_ROLE", who):
        raise fail(f"{who} is not an arbiter", 2)
    _send(
        f"{who} is no longer an arbiter",
        _run("the removal", lambda: escrow.revoke_role(account, "ARBITER_ROLE", who)),
    )


def _allow(ctx: typer.Context, token: str, allowed: bool) -> None:
    address = _address(token, "token")
    escrow, account = _require(_target(ctx), "DEFAULT_ADMIN_ROLE", "allowing tokens")
    if not escrow.chain.w3.eth.get_code(to_checksum_address(address)):
        raise fail(f"no contract at {address}: a token must be an ERC-20 contract", 2)
    res = _run("the token change", lambda: escrow.set_token_allowed(account, address, allowed))
    _send(f"token {address} {'allowed' if allowed else 'disallowed'}", res)


@token_app.command("allow")
def token_allow(
    ctx: typer.Context, token: Annotated[str, typer.Argument(help="The ERC-20's address.")]
) -> None:
    """Let listings be priced and paid in TOKEN (DEFAULT_ADMIN_ROLE)."""
    _allow(ctx, token, True)


@token_app.command("disallow")
def token_disallow(
    ctx: typer.Context, token: Annotated[str, typer.Argument(help="The ERC-20's address.")]
) -> None:
    """Refuse new listings in TOKEN; orders already paid in it still finish."""
    _allow(ctx, token, False)


@admin_app.command("pause")
def pause(ctx: typer.Context) -> None:
    """Stop new listings and orders (PAUSER_ROLE); orders in flight still finish or refund."""
    escrow, account = _require(_target(ctx), "PAUSER_ROLE", "pausing")
    _send("the escrow is paused", _run("pausing", lambda: escrow.pause(account)))


@admin_app.command("unpause")
def unpause(ctx: typer.Context) -> None:
    """Lift the pause (PAUSER_ROLE)."""
    escrow, account = _require(_target(ctx), "PAUSER_ROLE", "unpausing")
    _send("the escrow is running again", _run("unpausing", lambda: escrow.unpause(account)))


@fees_app.command("set")
def fees_set(
    ctx: typer.Context,
    fee_bps: Annotated[int | None, typer.Option(help="Platform fee, basis points.")] = None,
    min_bond_bps: Annotated[
        int | None, typer.Option(help="Least bond a listing may ask, basis points.")
    ] = None,
    arbitration_window: Annotated[
        int | None, typer.Option(help="Seconds an arbiter has to rule.")
    ] = None,
    min_delivery_window: Annotated[
        int | None, typer.Option(help="Shortest delivery window a listing may set, seconds.")
    ] = None,
    max_delivery_window: Annotated[
        int | None, typer.Option(help="Longest delivery window a listing may set, seconds.")
    ] = None,
    min_dispute_window: Annotated[
        int | None, typer.Option(help="Shortest dispute window a listing may set, seconds.")
    ] = None,
    max_dispute_window: Annotated[
        int | None, typer.Option(help="Longest dispute window a listing may set, seconds.")
    ] = None,
    fee_recipient: Annotated[str | None, typer.Option(help="Who receives the fees.")] = None,
) -> None:
    """Change the platform's settings; what is not given stays (DEFAULT_ADMIN_ROLE). The
    contract enforces its bounds: a value out of them is refused with the bound named."""
    from contracts.client import EscrowConfig

    escrow, account = _require(_target(ctx), "DEFAULT_ADMIN_ROLE", "changing the settings")
    current = EscrowConfig(*escrow.call("config"))
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("fee_bps", fee_bps),
            ("min_bond_bps", min_bond_bps),
            ("arbitration_window", arbitration_window),
            ("min_delivery_window", min_delivery_window),
            ("max_delivery_window", max_delivery_window),
            ("min_dispute_window", min_dispute_window),
            ("max_dispute_window", max_dispute_window),
            (
                "fee_recipient",
                _address(fee_recipient, "--fee-recipient") if fee_recipient else None,
            ),
        )
        if v is not None
    }
    if not changes:
        raise fail("nothing to change: give at least one of the options (see --help)", 2)
    wanted = replace(current, **changes)
    res = _run("the settings change", lambda: escrow.set_config(account, wanted))
    _send("settings now " + ", ".join(f"{k}={v}" for k, v in changes.items()), res)


@fees_app.command("withdraw")
def fees_withdraw(
    ctx: typer.Context,
    token: Annotated[
        str, typer.Option(help="The token (0x00…00: the chain's coin).")
    ] = "0x0000000000000000000000000000000000000000",
    to: Annotated[str | None, typer.Option(help="Where to send them (default: you).")] = None,
) -> None:
    """Withdraw the platform's fee income in one token (DEFAULT_ADMIN_ROLE)."""
    if not is_address(token):
        raise fail(f"--token {token!r} is not an address", 2)
    asset = str(to_checksum_address(token))
    escrow, account = _require(_target(ctx), "DEFAULT_ADMIN_ROLE", "withdrawing fees")
    receiver = _address(to, "--to") if to else account.address
    owed = int(escrow.call("feesOf", asset))
    if owed == 0:
        raise fail(f"no fees to withdraw in token {asset}", 2)
    res = _run("the withdrawal", lambda: escrow.withdraw_fees(account, asset, receiver))
    _send(f"{owed} (smallest units) of {asset} sent to {receiver}", res)
