"""`kameng keys new|import|list`: encrypted keystores in the kameng data directory.

Every command that signs takes ``--keystore NAME`` (or a path). See `backend.keystore`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backend.cli.app import app, console
from backend.cli.common import PasswordFileOption, ask_password, fail

keys_app = typer.Typer(
    help="Encrypted keystores (Web3 Secret Storage) in the data directory "
    "(KAMENG_DATA_DIR, default ./var): make, import and list them.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

NameArgument = Annotated[
    str, typer.Argument(help="The keystore's name (letters, digits, '.', '_', '-').")
]


def _password(password_file: Path | None) -> str:
    from backend.keystore import KeystoreError, password_from

    try:
        return password_from(password_file, prompt=ask_password, confirm=True)
    except KeystoreError as exc:
        raise fail(str(exc), 2) from exc


@keys_app.command("new")
def keys_new(name: NameArgument, password_file: PasswordFileOption = None) -> None:
    """Make a new key and keep it encrypted under NAME; prints its address (fund it from there)."""
    from backend.keystore import KeystoreError, create

    password = _password(password_file)
    try:
        made = create(name, password)
    except KeystoreError as exc:
        raise fail(str(exc), 2) from exc
    console.print(f"keystore {made.name}: {made.address}  ({made.path}, mode 0600)", soft_wrap=True)


@keys_app.command("import")
def keys_import(
    name: NameArgument,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="File holding the private key (0x hex); else a hidden prompt."
        ),
    ] = None,
    password_file: PasswordFileOption = None,
) -> None:
    """Encrypt an existing private key under NAME (then delete the plain key file yourself)."""
    from backend.keystore import KeystoreError, create

    if key_file is not None:
        try:
            secret = key_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read {key_file}: {exc.strerror or exc}", 2) from exc
    else:
        secret = str(typer.prompt("private key (0x hex)", hide_input=True))
    password = _password(password_file)
    try:
        made = create(name, password, private_key=secret)
    except KeystoreError as exc:
        raise fail(str(exc), 2) from exc
    console.print(f"keystore {made.name}: {made.address}  ({made.path}, mode 0600)", soft_wrap=True)


@keys_app.command("list")
def keys_list() -> None:
    """The keystores in the data directory, with their addresses (no password needed)."""
    from backend.keystore import keystore_dir, listing

    found = listing()
    if not found:
        console.print(f"no keystores in {keystore_dir()}: make one with `kameng keys new NAME`")
        return
    width = max(len(k.name) for k in found)
    for k in found:
        console.print(f"{k.name:<{width}}  {k.address}  {k.path}", soft_wrap=True)
