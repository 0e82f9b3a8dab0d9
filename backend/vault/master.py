"""The vault's master key: the value that recognises it, and the check made when the vault opens.

The table ``vault_keys`` (migration 0004) holds one row: the key id of the master key the vault
is written with (`backend.vault.crypto.master_key_id`, public) and its check value,
HMAC-SHA256(master key, "kameng.vault.key-check.v1") (`backend.vault.crypto.key_check`),
compared in constant time. Neither reveals the key.

`open_vault`, called where the app opens the vault (`backend.runtime.Runtime.prepare_database`):

- a vault whose row names another key is refused with one line that names both key ids and
  the fix (`MasterKeyMismatch`);
- a vault without the row adopts the configured key, after checking that nothing already in
  it was written under another one (the key ids of its code records; one evidence addition,
  which must decrypt), which covers a database written before 0004;
- then it seals any plaintext note left from before 0004 (`backend.vault.notes`).

`require_master_key` is the same check without the sealing, for writers (an upload) and tools;
`kameng vault rotate-key` (`backend.vault.rotate`) changes the row together with every record.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Integer, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from backend.errors import VaultKeyError
from backend.models import Base, Code
from backend.vault.crypto import CodeCipher, key_check, master_key_id
from backend.vault.evidence_additions import first_addition, open_addition
from backend.vault.notes import Progress, seal_legacy_notes

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: What the start-up check tells an operator whose key does not open the vault.
MISMATCH = (
    "KAMENG_MASTER_KEY is not the key this vault was written with (key id {written}, "
    "configured {configured}); set the original key or rotate with `kameng vault rotate-key`"
)


class MasterKeyMismatch(VaultKeyError):
    """The configured master key is not the one the vault was written with.

    Attributes:
        written: The key id the vault records (``unknown`` when only an undecryptable evidence
            addition says so).
        configured: The configured key's id.
    """

    def __init__(self, written: str, configured: str) -> None:
        super().__init__(MISMATCH.format(written=written, configured=configured))
        self.written = written
        self.configured = configured


class VaultKey(Base):
    """The master key a vault is written with (one row, id 1): its public id and check value."""

    __tablename__ = "vault_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    key_check: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def __repr__(self) -> str:
        return f"VaultKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class VaultOpened:
    """What `open_vault` found and did.

    Attributes:
        key_id: The master key's id (the vault's and the configured one: they are equal).
        adopted: The vault had no key recorded and now records the configured one.
        notes_sealed: Plaintext notes from before migration 0004 sealed and cleared now.
    """

    key_id: str
    adopted: bool
    notes_sealed: int


def _written_key_id(session: Session, master_key: bytes) -> str | None:
    """For a vault with no key row: the id of another key its records were written with."""
    configured = master_key_id(master_key)
    other = session.execute(
        select(Code.key_id).where(Code.key_id != configured).limit(1)
    ).scalar_one_or_none()
    if other is not None:
        return other
    addition = first_addition(session)
    if addition is not None and open_addition(master_key, addition) is None:
        return "unknown"
    return None


def _matches(row: VaultKey, master_key: bytes) -> bool:
    return hmac.compare_digest(bytes(row.key_check), key_check(master_key))


def require_master_key(
    session: Session, master_key: bytes, *, adopt: bool = True, lock: bool = False
) -> bool:
    """Check that `master_key` is the vault's; record it if the vault has none yet.

    Args:
        session: A session; an adopted key is added to it (the caller commits).
        master_key: The configured master key (32 bytes).
        adopt: Record the key when the vault has none (after checking its records).
        lock: Hold a shared lock on the key row until the transaction ends (PostgreSQL), so a
            rotation cannot commit between this check and the caller's writes.

    Returns:
        True if the key was adopted now.

    Raises:
        MasterKeyMismatch: the vault was written with another key.
    """
    configured = master_key_id(master_key)
    query = select(VaultKey).where(VaultKey.id == 1)
    if lock:
        query = query.with_for_update(read=True)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        written = _written_key_id(session, master_key)
        if written is not None:
            raise MasterKeyMismatch(written, configured)
        if not adopt:
            return False
        try:
            with session.begin_nested():
                session.add(
                    VaultKey(
                        id=1,
                        key_id=configured,
                        key_check=key_check(master_key),
                        created_at=datetime.now(UTC),
                    )
                )
            return True
        except IntegrityError:  # another process adopted a key a moment ago
            row = session.execute(query).scalar_one()
    if not _matches(row, master_key):
        raise MasterKeyMismatch(row.key_id, configured)
    return False


def vault_key_id(session: Session) -> str | None:
    """The id of the master key the vault records, or None if it records none yet."""
    return session.execute(select(VaultKey.key_id).where(VaultKey.id == 1)).scalar_one_or_none()


def open_vault(
    session: Session, master_key: bytes, *, progress: Progress | None = None
) -> VaultOpened:
    """Check the configured master key against the vault at start-up, then seal legacy notes.

    An empty vault adopts the configured key. The caller commits the session.

    Raises:
        MasterKeyMismatch: the vault was written with another key (its message is the one line
            to show the operator).
    """
    adopted = require_master_key(session, master_key)
    sealed = seal_legacy_notes(session, CodeCipher(master_key), progress=progress)
    return VaultOpened(master_key_id(master_key), adopted, sealed)
