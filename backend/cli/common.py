"""What the buyer and supplier commands share: the API client, the wallet, the chain, orders.

A command finds its wallet, in this order: ``--keystore NAME|PATH`` (an encrypted keystore made
by `kameng keys`; its password from ``KAMENG_KEYSTORE_PASSWORD``,
``KAMENG_KEYSTORE_PASSWORD_FILE`` or a hidden prompt), ``--key-file PATH`` (a file holding a 0x
hex private key), the environment variable ``KAMENG_PRIVATE_KEY``, or ``--dev ROLE`` which reads
a development account from the file `kameng serve` writes on the embedded chain
(``./var/dev-accounts.json``, or ``KAMENG_DEV_ACCOUNTS``: ``supplier``, ``arbiter``, ``buyer0``,
``buyer1``, ...).

It finds the chain from the API: ``GET /chain`` names the escrow and, on the embedded chain, the
JSON-RPC URL the server exposes; ``--rpc-url`` overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eth_account import Account

from backend.cli.app import err_console
from backend.client import ApiError, KamengClient
from backend.errors import JsonTooDeep
from backend.limits import loads
from contracts.chain import rpc_chain
from contracts.client import EscrowClient, rebuild_orders
from contracts.encoding import Order
from contracts.errors import ChainError, KamengError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from backend.schemas import OrderPublic

DEFAULT_API = "http://127.0.0.1:8000"
DEV_ACCOUNTS = Path("var/dev-accounts.json")

ApiOption = Annotated[
    str, typer.Option("--api", envvar="KAMENG_API_URL", help="The kameng API's base URL.")
]
KeystoreOption = Annotated[
    str | None,
    typer.Option(
        "--keystore",
        envvar="KAMENG_KEYSTORE",
        help="Sign with an encrypted keystore: a name from `kameng keys list` or a path "
        "(password: KAMENG_KEYSTORE_PASSWORD, KAMENG_KEYSTORE_PASSWORD_FILE, or a prompt).",
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        envvar="KAMENG_KEYSTORE_PASSWORD_FILE",
        help="File holding the keystore password (else KAMENG_KEYSTORE_PASSWORD or a prompt).",
    ),
]
ManifestOption = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        envvar="KAMENG_MANIFEST",
        help="The deployment manifest `kameng deploy` wrote: the escrow's address and the block "
        "to index from, checked against the node (chain id and code).",
    ),
]
KeyFileOption = Annotated[
    Path | None, typer.Option("--key-file", help="File holding your wallet's private key (0x hex).")
]
DevOption = Annotated[
    str | None,
    typer.Option(
        "--dev",
        help="Use a development account from var/dev-accounts.json "
        "(supplier, arbiter, admin, buyer0, buyer1, ...).",
    ),
]
RpcOption = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="KAMENG_RPC_URL",
        help="JSON-RPC node; by default the one the API advertises (embedded chain).",
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error, on one line however long (logs and scripts grep it), and return the
    exit to raise."""
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


def ask_password(confirm: bool) -> str:
    """Ask for a keystore password without echoing it (twice when making a keystore)."""
    return str(typer.prompt("keystore password", hide_input=True, confirmation_prompt=confirm))


def unlock(keystore: str, password_file: Path | None = None) -> LocalAccount:
    """Open a keystore by name or path, asking for its password if none is configured.

    Raises:
        typer.Exit: it is missing, or the password is wrong (one line saying which).
    """
    from backend.keystore import KeystoreError, open_keystore, password_from, resolve

    try:
        resolve(keystore)  # a missing keystore is said before a password is asked for
        password = password_from(
            password_file or _env_path("KAMENG_KEYSTORE_PASSWORD_FILE"), prompt=ask_password
        )
        return open_keystore(keystore, password)
    except KeystoreError as exc:
        raise fail(str(exc), 2) from exc


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def load_wallet(
    key_file: Path | None,
    dev: str | None,
    dev_file: Path | None = None,
    *,
    keystore: str | None = None,
) -> LocalAccount:
    """The wallet a command acts as.

    Raises:
        typer.Exit: none was given, or the key cannot be read.
    """
    if keystore is not None:
        return unlock(keystore)
    dev_file = dev_file or Path(os.environ.get("KAMENG_DEV_ACCOUNTS", str(DEV_ACCOUNTS)))
    try:
        if key_file is not None:
            account: LocalAccount = Account.from_key(key_file.read_text().strip())
            return account
        if dev is not None:
            data = loads(dev_file.read_text(), str(dev_file))
            if dev.startswith("buyer") and dev[5:].isdigit():
                entry = data["buyers"][int(dev[5:])]
            else:
                entry = data[dev]
            dev_account: LocalAccount = Account.from_key(entry["private_key"])
            return dev_account
        env = os.environ.get("KAMENG_PRIVATE_KEY")
        if env:
            env_account: LocalAccount = Account.from_key(env.strip())
            return env_account
    except (OSError, ValueError, KeyError, IndexError, JsonTooDeep) as exc:
        raise fail(f"cannot load the wallet ({type(exc).__name__}: {exc})") from exc
    raise fail(
        "no wallet: pass --keystore NAME, --key-file PATH, set KAMENG_PRIVATE_KEY, or --dev ROLE "
        "(with `kameng serve` on the embedded chain)",
        2,
    )


@dataclass
class Session:
    """A command's connections: the API, the chain, the escrow and the wallet."""

    api: KamengClient
    escrow: EscrowClient
    wallet: LocalAccount

    @property
    def chain_id(self) -> int:
        """The chain id."""
        return self.escrow.chain.chain_id


def connect(api_url: str, wallet: LocalAccount, rpc_url: str | None = None) -> Session:
    """Connect to the API and, through what it advertises, to the chain and the escrow.

    Raises:
        typer.Exit: the API or the node cannot be reached.
    """
    api = KamengClient(api_url)
    try:
        info = api.chain_info()
        url = rpc_url or api.rpc_url()
        if url is None:
            raise fail("the API runs on a real node and does not expose it: pass --rpc-url")
        chain = rpc_chain(url)
        if chain.chain_id != info.chain_id:
            raise fail(f"--rpc-url is chain {chain.chain_id}, the API serves {info.chain_id}")
    except ApiError as exc:
        raise fail(str(exc)) from exc
    except ChainError as exc:
        raise fail(str(exc)) from exc
    return Session(api=api, escrow=EscrowClient(chain, info.escrow), wallet=wallet)


def from_config(value: Any, key: str) -> Any:
    """An option's value: as given (command line or environment), else `key` in kameng.toml.

    Raises:
        typer.Exit: the configuration file is unusable (one line saying why).
    """
    from backend.config import configured
    from backend.errors import ConfigError

    if value is not None:
        return value
    try:
        return configured(key)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


@dataclass(frozen=True)
class Deployment:
    """Where the escrow is: its address and the block its history starts at."""

    escrow: str
    start_block: int


def deployment(
    manifest: Path | None, escrow: str | None, start_block: int, rpc_url: str | None
) -> Deployment | None:
    """The escrow a command works on: from `manifest` (checked against the node at `rpc_url`),
    else `escrow` (with `start_block`), else the configuration file's; None if none is given.

    Raises:
        typer.Exit: the manifest is unreadable, names another chain or other code, or
            disagrees with an --escrow also given.
    """
    from contracts.manifest import ManifestError, read_manifest

    manifest = from_config(manifest, "manifest")
    if manifest is None:
        escrow = from_config(escrow, "escrow_address")
        return None if escrow is None else Deployment(str(escrow), start_block)
    try:
        made = read_manifest(Path(manifest))
        if escrow is not None and escrow.lower() != made.escrow.lower():
            raise fail(
                f"--escrow {escrow} is not the manifest's escrow {made.escrow}: give one of them",
                2,
            )
        if rpc_url is not None:
            made.check_chain(rpc_chain(rpc_url), rpc_url)
    except (ManifestError, ChainError) as exc:
        raise fail(str(exc), 2) from exc
    return Deployment(made.escrow, start_block or made.deploy_block)


def order_from_public(row: OrderPublic) -> Order:
    """The contract's Order struct from the API's view of an order."""
    return Order.from_record(row)


def order_from_chain(escrow: EscrowClient, order_id: int, from_block: int = 0) -> Order | None:
    """Rebuild an order from its events on-chain (when the mirror lags behind)."""
    topic = "0x" + order_id.to_bytes(32, "big").hex()
    raw = escrow.logs(from_block, "latest", [None, topic])
    events = [e for e in (escrow.codec.decode_log(r) for r in raw or []) if e is not None]
    stamps = {e.block_number: escrow.block_timestamp(e.block_number) for e in events}
    return rebuild_orders(events, stamps).get(order_id)


def current_order(s: Session, order_id: int) -> Order:
    """The order as stored on-chain: the mirror's view if it hashes right, else rebuilt.

    Raises:
        typer.Exit: the order is unknown, finished, or not the wallet's business.
    """
    order: Order | None = None
    paid_block = 0
    try:
        detail = s.api.order(order_id, s.wallet)
        order, paid_block = order_from_public(detail), detail.paid_block
    except ApiError as exc:
        if exc.status != 404:
            raise fail(str(exc)) from exc
    if order is not None and s.escrow.order_matches(order_id, order):
        return order
    rebuilt = order_from_chain(s.escrow, order_id, paid_block)
    if rebuilt is None:
        raise fail(f"unknown order {order_id}: no OrderPaid event on escrow {s.escrow.address}")
    if not s.escrow.order_matches(order_id, rebuilt):
        raise fail(
            f"order {order_id} is finished ({rebuilt.state.name.lower()}) or unknown "
            "on-chain; nothing to do"
        )
    return rebuilt


def describe_error(exc: BaseException) -> str:
    """A one-line description of an error for the terminal."""
    if isinstance(exc, KamengError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def write_private(target: Path, data: bytes) -> None:
    """Write `data` to `target` readable by this user only (0600; new folders 0700), replacing
    it atomically: a bundle or a release may carry an order key or codes."""
    from indexer.db import private_dirs

    private_dirs(target.parent)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp, 0o600)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
