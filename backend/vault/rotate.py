"""Rotate the vault's master key: every record, every note, the evidence additions, in one go.

`rotate_master_key` runs in ONE database transaction, in this order:

1. check that the old key is the vault's (`backend.vault.master.require_master_key`; a vault
   that records no key yet adopts it first, after checking its records), then switch the key
   row to the new key's id and check value with a compare-and-swap on the old check value, so
   that a second rotation running at the same time fails instead of interleaving (on
   PostgreSQL the row stays locked, and an upload, which reads it with a shared lock before
   writing, waits and is then refused);
2. re-wrap the data key of every code record under the new key (`CodeCipher.rewrap`): the
   code's and the note's ciphertexts are sealed under the data key and stay as they are; a
   plaintext note left from before migration 0004 is sealed on the way;
3. re-encrypt every evidence addition under the key the new master key derives
   (`backend.vault.evidence_additions`);
4. commit.

Any failure (a record that does not unwrap, an addition that does not decrypt, the process
killed) rolls everything back: the old key stays the vault's, and every record is still under
it. Rotation is meant to run with `kameng serve` stopped (docs/OPERATIONS.md): a server still
running holds the old key, and would fail to decrypt until it is restarted with the new one.

Re-wrapping protects what is in the database from the old key from now on. It cannot take back
what was already exposed: a copy of the database made before the rotation still opens with the
old key, so retire old backups with the old key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import func, select, update

from backend.errors import VaultKeyError
from backend.models import Code
from backend.vault.crypto import CodeCipher, key_check
from backend.vault.evidence_additions import count_additions, reencrypt_additions
from backend.vault.master import VaultKey, require_master_key
from backend.vault.notes import RECORD_COLUMNS, Progress, record_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.engine import CursorResult
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did.

    Attributes:
        old_key_id: The id of the key the vault was under.
        new_key_id: The id of the key it is under now.
        codes: Code records re-wrapped.
        notes_sealed: Plaintext notes from before migration 0004 sealed on the way.
        additions: Evidence additions re-encrypted.
    """

    old_key_id: str
    new_key_id: str
    codes: int
    notes_sealed: int
    additions: int


def rotation_size(session: Session) -> int:
    """How many rows a rotation rewrites (code records and evidence additions): its progress."""
    codes = int(session.execute(select(func.count()).select_from(Code)).scalar_one())
    return codes + count_additions(session)


def rotate_master_key(
    session: Session,
    old_key: bytes,
    new_key: bytes,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
    also: Callable[[Session, bytes, bytes], int] | None = None,
) -> RotationResult:
    """Move the whole vault from `old_key` to `new_key` in one transaction, and commit it.

    Args:
        session: A session with no transaction of its own in progress; committed on success,
            rolled back on any failure.
        old_key: The master key the vault is written with (the configured one).
        new_key: The new master key (32 bytes, not the old one).
        batch_size: Code records (and additions) read and updated at a time.
        progress: Called as progress(done, total) after each batch, total being the code
            records plus the evidence additions.
        also: More secrets kept under the master key, re-sealed in the same transaction by
            the layer that owns them (the CLI passes the notification endpoints' secrets);
            called as also(session, old_key, new_key).

    Returns:
        What was rewritten.

    Raises:
        MasterKeyMismatch: `old_key` is not the vault's key; nothing changed.
        VaultKeyError: the new key is the old one, a record or addition does not decrypt under
            the old key, or another rotation ran at the same time; nothing changed.
        ValueError: a key is not 32 bytes.
    """
    old, new = CodeCipher(old_key), CodeCipher(new_key)
    if old.key_id == new.key_id:
        raise VaultKeyError("the new master key is the current one: make a new key to rotate to")
    try:
        result = _rotate(session, old, new, old_key, new_key, batch_size, progress)
        if also is not None:
            also(session, old_key, new_key)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    log.info(
        "master key rotated from %s to %s: %d code records, %d legacy notes, %d additions",
        result.old_key_id,
        result.new_key_id,
        result.codes,
        result.notes_sealed,
        result.additions,
    )
    return result


def _rotate(
    session: Session,
    old: CodeCipher,
    new: CodeCipher,
    old_key: bytes,
    new_key: bytes,
    batch_size: int,
    progress: Progress | None,
) -> RotationResult:
    require_master_key(session, old_key)
    swapped = cast(
        "CursorResult[Any]",
        session.execute(
            update(VaultKey)
            .where(VaultKey.id == 1, VaultKey.key_check == key_check(old_key))
            .values(key_id=new.key_id, key_check=key_check(new_key), rotated_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        ),
    )
    if swapped.rowcount != 1:
        raise VaultKeyError(
            "the vault's master key changed while rotating (another rotation at the same "
            "time?); nothing was rotated: check `kameng vault check-key` and retry"
        )
    total = rotation_size(session)
    done = codes = notes = 0
    last_id = 0
    while True:
        rows = session.execute(
            select(*RECORD_COLUMNS).where(Code.id > last_id).order_by(Code.id).limit(batch_size)
        ).all()
        if not rows:
            break
        params = []
        for row in rows:
            if not row.wrapped_key:  # erased by retention (`backend.evidence.retention`)
                params.append(
                    {
                        "id": row.id,
                        "wrapped_key": b"",
                        "key_id": new.key_id,
                        "note_sealed": None,
                        "legacy_note": None,
                    }
                )
                continue
            listing_id, index = int(row.listing_id), int(row.code_index)
            record = record_of(row)
            if row.legacy_note is not None:
                sealed = old.seal_note(listing_id, index, record, row.legacy_note)
                record = replace(record, sealed_note=sealed)
                notes += 1
            moved = old.rewrap(listing_id, index, record, new)
            params.append(
                {
                    "id": row.id,
                    "wrapped_key": moved.wrapped_key,
                    "key_id": moved.key_id,
                    "note_sealed": moved.sealed_note,
                    "legacy_note": None,
                }
            )
        session.execute(update(Code), params)
        codes += len(rows)
        done += len(rows)
        last_id = rows[-1].id
        if progress is not None:
            progress(done, total)

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    additions = reencrypt_additions(session, old_key, new_key, batch_size=batch_size, step=step)
    return RotationResult(old.key_id, new.key_id, codes, notes, additions)
