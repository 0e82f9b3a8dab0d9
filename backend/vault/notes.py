"""Suppliers' notes, sealed at rest like the codes they come with.

The CSV's third column is free text that suppliers use for PINs and the like, so it is a secret:
an upload seals it under the code record's data key (`backend.vault.crypto`: associated data
"kameng.vault.note.v1", the listing and the index) into ``vault_codes.note_sealed``. It never
reaches a SQL parameter, a log line or a dump in plaintext.

Notes stored before migration 0004 are plaintext in ``vault_codes.note`` (`Code.legacy_note`).
A migration cannot seal them, since it runs without the master key, so the design is:

- migration 0004 adds the ``note_sealed`` column and leaves the old column as it is;
- the first time the vault is opened with its key (`backend.vault.master.open_vault`, at
  start-up, after the key check) `seal_legacy_notes` seals every plaintext note and clears it,
  in the start-up transaction; `kameng vault rotate-key` does the same for any it meets;
- every reader goes through `read_notes`, which decrypts sealed notes (and would return a legacy
  one still unsealed, so no note is ever lost in between).

Clearing the column does not scrub the bytes the database keeps elsewhere: PostgreSQL's dead row
versions until VACUUM, SQLite's free pages and WAL until VACUUM and a checkpoint, and any backup
taken before. docs/OPERATIONS.md says to VACUUM once after upgrading and to retire old backups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select, update

from backend.models import Code
from backend.vault.crypto import EncryptedRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from backend.vault.crypto import CodeCipher

log = logging.getLogger(__name__)

#: Called as progress(done, total).
Progress = Callable[[int, int], None]


class RecordRow(Protocol):
    """The columns of a `Code` row that make its encrypted record (a row or a result row)."""

    @property
    def ciphertext(self) -> bytes: ...
    @property
    def nonce(self) -> bytes: ...
    @property
    def wrapped_key(self) -> bytes: ...
    @property
    def key_id(self) -> str: ...
    @property
    def note_sealed(self) -> bytes | None: ...


#: The columns `record_of` reads, with the row's place and id: select these, not `Code`, where
#: rows are then updated in bulk (a bulk update leaves loaded objects stale).
RECORD_COLUMNS = (
    Code.id,
    Code.listing_id,
    Code.code_index,
    Code.ciphertext,
    Code.nonce,
    Code.wrapped_key,
    Code.key_id,
    Code.note_sealed,
    Code.legacy_note,
)


def record_of(row: RecordRow) -> EncryptedRecord:
    """The encrypted record a `Code` row stores (code, wrapped data key, sealed note)."""
    return EncryptedRecord(
        bytes(row.ciphertext),
        bytes(row.nonce),
        bytes(row.wrapped_key),
        row.key_id,
        None if row.note_sealed is None else bytes(row.note_sealed),
    )


def count_legacy_notes(session: Session) -> int:
    """How many plaintext notes from before migration 0004 are left."""
    query = select(func.count()).select_from(Code).where(Code.legacy_note.is_not(None))
    return int(session.execute(query).scalar_one())


def seal_legacy_notes(
    session: Session,
    cipher: CodeCipher,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> int:
    """Seal every plaintext note left from before migration 0004, and clear the plaintext.

    Nothing is committed: the caller's transaction covers every row.

    Args:
        session: A session.
        cipher: The vault's master key (checked by the caller).
        batch_size: Rows read and updated at a time.
        progress: Called as progress(done, total) after each batch.

    Returns:
        How many notes were sealed.

    Raises:
        VaultKeyError: a record's data key does not unwrap under `cipher`.
    """
    total = count_legacy_notes(session)
    done = 0
    last_id = 0
    while done < total:
        rows = session.execute(
            select(*RECORD_COLUMNS)
            .where(Code.legacy_note.is_not(None), Code.id > last_id)
            .order_by(Code.id)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        params = []
        for row in rows:
            assert row.legacy_note is not None
            listing_id, index = int(row.listing_id), int(row.code_index)
            sealed = cipher.seal_note(listing_id, index, record_of(row), row.legacy_note)
            params.append({"id": row.id, "note_sealed": sealed, "legacy_note": None})
        session.execute(update(Code), params)
        done += len(rows)
        last_id = rows[-1].id
        if progress is not None:
            progress(done, total)
    if done:
        log.info("sealed %d plaintext note(s) stored before migration 0004", done)
    return done


def read_notes(
    session: Session,
    cipher: CodeCipher,
    listing_id: int,
    *,
    first_index: int = 0,
    count: int | None = None,
) -> list[tuple[int, str]]:
    """The notes of a listing's codes, decrypted, as (code index, note), by index.

    Codes without a note are left out.

    Args:
        session: A session.
        cipher: The vault's master key.
        listing_id: The listing.
        first_index: The first code index to read.
        count: How many code indexes to read from `first_index`; all if None.

    Raises:
        VaultKeyError: a note does not decrypt under `cipher` (another key, or altered).
    """
    query = (
        select(*RECORD_COLUMNS)
        .where(
            Code.listing_id == listing_id,
            Code.code_index >= first_index,
            Code.note_sealed.is_not(None) | Code.legacy_note.is_not(None),
        )
        .order_by(Code.code_index)
    )
    if count is not None:
        query = query.where(Code.code_index < first_index + count)
    out: list[tuple[int, str]] = []
    for row in session.execute(query):
        index = int(row.code_index)
        note = cipher.decrypt_note(listing_id, index, record_of(row))
        if note is None:
            note = row.legacy_note
        if note is not None:
            out.append((index, note))
    return out
