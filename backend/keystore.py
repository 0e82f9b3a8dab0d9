"""Encrypted keystores: the keys an operator, a supplier or a keeper signs with.

A keystore is the Web3 Secret Storage JSON (version 3) that eth-account writes and reads
(scrypt, AES-128-CTR), one per file, in ``<data dir>/keystores/NAME.json`` with mode 0600 in a
0700 folder. The data directory is ``KAMENG_DATA_DIR`` (default ``./var``).

A password comes from a file (``--password-file``), the environment variable
``KAMENG_KEYSTORE_PASSWORD``, or a hidden prompt; never from a command-line argument, which
other users of the machine can read in the process list.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

PASSWORD_ENV = "KAMENG_KEYSTORE_PASSWORD"
DATA_DIR_ENV = "KAMENG_DATA_DIR"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD = 8


class KeystoreError(ConfigError):
    """A keystore cannot be made, found or opened; the message says what to fix."""


@dataclass(frozen=True)
class KeystoreInfo:
    """One keystore file: its name, where it is, and the address it holds."""

    name: str
    path: Path
    address: str


def data_dir() -> Path:
    """The kameng data directory: ``KAMENG_DATA_DIR`` or ``./var``."""
    return Path(os.environ.get(DATA_DIR_ENV, "var"))


def keystore_dir(base: Path | None = None) -> Path:
    """Where keystores live: ``<data dir>/keystores``."""
    return (base or data_dir()) / "keystores"


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise KeystoreError(
            f"bad keystore name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise KeystoreError(
            f"the keystore password is too short: use at least {MIN_PASSWORD} characters"
        )


def _write(path: Path, data: dict[str, Any]) -> None:
    from indexer.db import private_dirs

    private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.chmod(path, 0o600)


def create(
    name: str, password: str, *, private_key: str | None = None, base: Path | None = None
) -> KeystoreInfo:
    """Write a new keystore named `name`, for a fresh key or for `private_key` (0x hex).

    Raises:
        KeystoreError: bad name or password, a keystore of that name exists, or the key is not
            a private key.
    """
    from eth_account import Account

    _check_name(name)
    _check_password(password)
    path = keystore_dir(base) / f"{name}.json"
    if path.exists():
        raise KeystoreError(f"a keystore named {name!r} exists already ({path}): pick another")
    try:
        account: LocalAccount = (
            Account.create() if private_key is None else Account.from_key(private_key.strip())
        )
    except (ValueError, TypeError) as exc:
        raise KeystoreError(
            "that is not a private key: give 64 hex digits, with or without 0x"
        ) from exc
    _write(path, Account.encrypt(account.key, password))
    return KeystoreInfo(name=name, path=path, address=account.address)


def _address_of(path: Path) -> str:
    from eth_utils import to_checksum_address

    data = json.loads(path.read_text())
    return str(to_checksum_address("0x" + str(data["address"]).removeprefix("0x")))


def listing(base: Path | None = None) -> list[KeystoreInfo]:
    """Every readable keystore in the data directory, by name."""
    folder = keystore_dir(base)
    out: list[KeystoreInfo] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(KeystoreInfo(name=path.stem, path=path, address=_address_of(path)))
        except (OSError, ValueError, KeyError):
            continue
    return out


def resolve(name_or_path: str, base: Path | None = None) -> Path:
    """A keystore's file from its name in the data directory or a path.

    Raises:
        KeystoreError: there is no such keystore.
    """
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if NAME.match(name_or_path):
        named = keystore_dir(base) / f"{name_or_path}.json"
        if named.is_file():
            return named
    raise KeystoreError(
        f"no keystore {name_or_path!r}: give a path or one of the names `kameng keys list` "
        "shows (make one with `kameng keys new NAME`)"
    )


def open_keystore(name_or_path: str, password: str, base: Path | None = None) -> LocalAccount:
    """Decrypt a keystore.

    Raises:
        KeystoreError: it is missing, is not a keystore, or the password is wrong.
    """
    from eth_account import Account

    path = resolve(name_or_path, base)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"{path} is not a keystore (not JSON): {exc}") from exc
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for keystore {path}") from exc
        raise KeystoreError(f"{path} is not a usable keystore: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"{path} is not a keystore (missing {exc})") from exc
    account: LocalAccount = Account.from_key(key)
    return account


def password_from(password_file: Path | None, *, prompt: Any = None, confirm: bool = False) -> str:
    """The keystore password: from `password_file`, ``KAMENG_KEYSTORE_PASSWORD``, or `prompt`
    (a callable asking for it hidden; `confirm` asks twice).

    Raises:
        KeystoreError: no source gave one.
    """
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise KeystoreError(f"cannot read the password file {password_file}: {exc}") from exc
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    if prompt is not None:
        return str(prompt(confirm))
    raise KeystoreError(
        f"no keystore password: pass --password-file PATH or set {PASSWORD_ENV} "
        "(a password is never taken as a command-line argument)"
    )


__all__ = [
    "DATA_DIR_ENV",
    "PASSWORD_ENV",
    "KeystoreError",
    "KeystoreInfo",
    "create",
    "data_dir",
    "keystore_dir",
    "listing",
    "open_keystore",
    "password_from",
    "resolve",
]
