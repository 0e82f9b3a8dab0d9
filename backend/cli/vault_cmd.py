"""`kameng vault`: the vault's master key (check it, rotate it) and the suppliers' notes.

Every command reads the configuration `kameng serve` reads (``KAMENG_*`` variables or ``.env``;
production rules unless ``--dev``) and the database of ``--database-url`` or
``KAMENG_DATABASE_URL``, which it brings up to date first, as serve does.

``rotate-key`` takes the old key from ``KAMENG_MASTER_KEY`` and the new one from the file of
``--new-key-file`` or the variable ``KAMENG_NEW_MASTER_KEY``, never from an argument (a
command line is visible to every user of the machine and kept in shell history). Stop
`kameng serve` first; see docs/OPERATIONS.md.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from backend.cli.app import app, console
from backend.cli.common import fail

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from backend.config import Settings

vault_app = typer.Typer(
    help="The code vault: check or rotate its master key, read the suppliers' notes.",
    no_args_is_help=True,
)
app.add_typer(vault_app, name="vault")

#: The variable `rotate-key` reads the new master key from, when no --new-key-file is given.
NEW_KEY_ENV = "KAMENG_NEW_MASTER_KEY"
#: Rotations of at least this many rows show a progress bar.
PROGRESS_FROM = 1000

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="KAMENG_DATABASE_URL",
        help="The vault's database (sqlite:///file.db, postgresql://...); default: the "
        "configured one.",
    ),
]
DevOption = Annotated[
    bool,
    typer.Option(
        "--dev",
        help="The database of a development server (kameng serve --dev), whose configuration "
        "may hold the public development secrets.",
    ),
]


def _settings(dev: bool) -> Settings:
    from backend.config import Settings
    from backend.errors import ConfigError

    try:
        return Settings(environment="development") if dev else Settings()
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


@contextmanager
def _vault_sessions(
    settings: Settings, database_url: str | None
) -> Iterator[sessionmaker[Session]]:
    """The migrated database's sessions; a database error ends the command with one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from backend.db import make_engine, migrate, session_factory

    engine = make_engine(database_url or settings.database_url)
    try:
        migrate(engine)
        yield session_factory(engine)
    except SQLAlchemyError as exc:
        raise fail(
            f"cannot use the database ({type(exc).__name__}): start it, or fix --database-url"
        ) from exc
    finally:
        engine.dispose()


def _read_new_key(new_key_file: Path | None) -> bytes:
    from backend.config import parse_key32
    from backend.errors import ConfigError

    if new_key_file is not None:
        try:
            text = new_key_file.read_text()
        except OSError as exc:
            raise fail(f"cannot read {new_key_file}: {exc.strerror or exc}", 2) from exc
        name = f"the new master key in {new_key_file}"
    elif os.environ.get(NEW_KEY_ENV):
        text = os.environ[NEW_KEY_ENV]
        name = NEW_KEY_ENV
    else:
        raise fail(
            f"give the new master key in a file (--new-key-file PATH) or in {NEW_KEY_ENV}, never "
            "on the command line; make one with `python -c 'import os; "
            "print(os.urandom(32).hex())'`",
            2,
        )
    try:
        return parse_key32(text, name)
    except ConfigError as exc:
        raise fail(str(exc), 2) from exc


@vault_app.command("check-key")
def check_key(database_url: DatabaseOption = None, dev: DevOption = False) -> None:
    """Say whether the configured KAMENG_MASTER_KEY is the vault's (exit 1 if not).

    A vault that records no key yet is checked against its records and left as it is; the
    next start of kameng serve adopts the key.
    """
    from backend.vault.crypto import master_key_id
    from backend.vault.master import MasterKeyMismatch, require_master_key, vault_key_id

    settings = _settings(dev)
    configured = master_key_id(settings.master_key_bytes)
    with _vault_sessions(settings, database_url) as sessions, sessions() as session:
        try:
            require_master_key(session, settings.master_key_bytes, adopt=False)
        except MasterKeyMismatch as exc:
            raise fail(str(exc)) from exc
        recorded = vault_key_id(session)
    if recorded is None:
        console.print(
            f"the vault records no master key yet; its records agree with the configured key "
            f"(key id {configured}), which kameng serve adopts when it starts"
        )
    else:
        console.print(f"KAMENG_MASTER_KEY is the vault's master key (key id {configured})")


@vault_app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help=f"File holding the new master key (64 hex digits); else {NEW_KEY_ENV}.",
        ),
    ] = None,
    database_url: DatabaseOption = None,
    dev: DevOption = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows rewritten per statement.")
    ] = 500,
) -> None:
    """Move the vault from KAMENG_MASTER_KEY to a new master key, in one transaction.

    Every code record, note and evidence addition is re-encrypted; if anything fails, nothing
    changes. Stop kameng serve first, and start it again with the new key in KAMENG_MASTER_KEY.
    """
    from backend.config import DEV_MASTER_KEY, parse_key32
    from backend.errors import VaultKeyError
    from backend.notify.endpoints import reseal_secrets
    from backend.vault.crypto import master_key_id
    from backend.vault.master import MasterKeyMismatch
    from backend.vault.rotate import rotate_master_key, rotation_size

    settings = _settings(dev)
    new_key = _read_new_key(new_key_file)
    if new_key == settings.master_key_bytes:
        raise fail("the new master key is the current one: make a new key to rotate to", 2)
    if new_key == settings.session_key_bytes:
        raise fail(
            "the new master key equals KAMENG_SESSION_KEY: use a separate key, so that a leaked "
            "session key does not open the vault",
            2,
        )
    if not dev and new_key == parse_key32(DEV_MASTER_KEY, "KAMENG_MASTER_KEY"):
        raise fail("the new master key is the public development key: make a real one", 2)
    old_id, new_id = master_key_id(settings.master_key_bytes), master_key_id(new_key)
    with _vault_sessions(settings, database_url) as sessions, sessions() as session:
        total = rotation_size(session)
        session.rollback()  # the rotation starts its own transaction
        bar = Progress(
            TextColumn("re-encrypting the vault"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=total < PROGRESS_FROM,
        )
        task = bar.add_task("rotate", total=total)
        try:
            with bar:
                result = rotate_master_key(
                    session,
                    settings.master_key_bytes,
                    new_key,
                    batch_size=batch_size,
                    progress=lambda done, _total: bar.update(task, completed=done),
                    also=reseal_secrets,
                )
        except MasterKeyMismatch as exc:
            raise fail(
                f"the configured KAMENG_MASTER_KEY (key id {exc.configured}) is not this vault's "
                f"(key id {exc.written}): rotate-key reads the vault's current key from "
                "KAMENG_MASTER_KEY; nothing changed"
            ) from exc
        except VaultKeyError as exc:
            raise fail(f"{exc}; nothing changed, the vault is still under key id {old_id}") from exc
    console.print(
        f"rotated the vault from key id {old_id} to key id {new_id}: {result.codes} code "
        f"record(s) ({result.notes_sealed} plaintext note(s) sealed on the way) and "
        f"{result.additions} evidence addition(s), in one transaction."
    )
    console.print(
        "Now put the new key in KAMENG_MASTER_KEY wherever kameng runs, and back it up; kameng "
        "serve refuses the old one from now on. Keep the old key only as long as you keep "
        "backups of the database taken before this rotation (docs/OPERATIONS.md)."
    )


@vault_app.command("notes")
def notes(
    listing_id: Annotated[int, typer.Argument(min=0, help="The listing.")],
    first_index: Annotated[int, typer.Option(min=0, help="First code index.")] = 0,
    count: Annotated[int | None, typer.Option(min=1, help="Code indexes to read.")] = None,
    database_url: DatabaseOption = None,
    dev: DevOption = False,
) -> None:
    """Print the suppliers' notes of a listing's codes, decrypted (they may hold PINs)."""
    from backend.errors import VaultKeyError
    from backend.vault.crypto import CodeCipher
    from backend.vault.master import require_master_key
    from backend.vault.notes import read_notes

    settings = _settings(dev)
    with _vault_sessions(settings, database_url) as sessions, sessions() as session:
        try:
            require_master_key(session, settings.master_key_bytes, adopt=False)
            found = read_notes(
                session,
                CodeCipher(settings.master_key_bytes),
                listing_id,
                first_index=first_index,
                count=count,
            )
        except VaultKeyError as exc:
            raise fail(str(exc)) from exc
    if not found:
        console.print(f"no notes for listing {listing_id} in that range")
        return
    table = Table("index", "note", title=f"notes of listing {listing_id}")
    for index, note in found:
        table.add_row(str(index), Text(note))
    console.print(table)
