"""The evidence additions' encryption, as far as the master key is concerned: check and re-encrypt.

`backend.evidence.store.AdditionsStore` keeps each party's addition to an order's evidence in
``evidence_additions``, AES-256-GCM encrypted under a key derived from the master key::

    additions_key = HMAC-SHA256(master key, "kameng.evidence.additions.v1")
    ciphertext    = AES-256-GCM(additions_key, nonce, data, ad)     ad = "<order_id>:<party>"

That module belongs to the evidence service; this one repeats the derivation (and nothing else)
so that the vault can tell whether a master key opens the additions (`open_addition`, for the
start-up check of a vault that records no key yet) and re-encrypt them when the master key is
rotated (`reencrypt_additions`). The table is named here as a lightweight table, not through the
evidence's model, so this module depends on the columns only. tests/backend/test_vault_rotate.py
checks that `AdditionsStore` reads what `reencrypt_additions` writes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import LargeBinary, String, column, func, select, table, tuple_, update

from backend.errors import VaultKeyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

#: The label `backend.evidence.store.AdditionsStore` derives its key with.
ADDITIONS_KEY_LABEL = b"kameng.evidence.additions.v1"

ADDITIONS = table(
    "evidence_additions",
    column("order_id", String),
    column("party", String),
    column("nonce", LargeBinary),
    column("ciphertext", LargeBinary),
)


def additions_key(master_key: bytes) -> bytes:
    """The evidence additions' AES-256 key for a master key (as `AdditionsStore` derives it)."""
    return hmac.new(master_key, ADDITIONS_KEY_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class StoredAddition:
    """One encrypted row of ``evidence_additions``."""

    order_id: str
    party: str
    nonce: bytes
    ciphertext: bytes

    @property
    def associated_data(self) -> bytes:
        """The associated data it was encrypted with: ``"<order_id>:<party>"``."""
        return f"{self.order_id}:{self.party}".encode()

    def __repr__(self) -> str:
        return f"StoredAddition(order_id={self.order_id}, party={self.party!r})"


def first_addition(session: Session) -> StoredAddition | None:
    """Any one stored addition, or None if there are none."""
    row = session.execute(
        select(ADDITIONS.c.order_id, ADDITIONS.c.party, ADDITIONS.c.nonce, ADDITIONS.c.ciphertext)
        .order_by(ADDITIONS.c.order_id, ADDITIONS.c.party)
        .limit(1)
    ).first()
    if row is None:
        return None
    return StoredAddition(str(row[0]), str(row[1]), bytes(row[2]), bytes(row[3]))


def open_addition(master_key: bytes, addition: StoredAddition) -> bytes | None:
    """The addition's plaintext under `master_key`, or None if it does not decrypt."""
    try:
        return AESGCM(additions_key(master_key)).decrypt(
            addition.nonce, addition.ciphertext, addition.associated_data
        )
    except InvalidTag:
        return None


def count_additions(session: Session) -> int:
    """How many additions are stored."""
    return int(session.execute(select(func.count()).select_from(ADDITIONS)).scalar_one())


def reencrypt_additions(
    session: Session,
    old_key: bytes,
    new_key: bytes,
    *,
    batch_size: int = 500,
    step: Callable[[int], None] | None = None,
) -> int:
    """Re-encrypt every stored addition from `old_key`'s derived key to `new_key`'s, in place.

    Each gets a fresh nonce and keeps its associated data. Nothing is committed: the caller's
    transaction covers every row.

    Args:
        session: The session of the rotation's transaction.
        old_key: The master key the additions are encrypted under now.
        new_key: The master key they are to be encrypted under.
        batch_size: Rows read and updated at a time.
        step: Called with the number of rows done after each batch.

    Returns:
        How many additions were re-encrypted.

    Raises:
        VaultKeyError: an addition does not decrypt under `old_key` (named by order and party).
    """
    new_aead = AESGCM(additions_key(new_key))
    done = 0
    after: tuple[str, str] | None = None
    cols = (ADDITIONS.c.order_id, ADDITIONS.c.party, ADDITIONS.c.nonce, ADDITIONS.c.ciphertext)
    while True:
        query = select(*cols).order_by(ADDITIONS.c.order_id, ADDITIONS.c.party).limit(batch_size)
        if after is not None:
            query = query.where(tuple_(ADDITIONS.c.order_id, ADDITIONS.c.party) > after)
        rows = [
            StoredAddition(str(r[0]), str(r[1]), bytes(r[2]), bytes(r[3]))
            for r in session.execute(query)
        ]
        if not rows:
            return done
        for row in rows:
            plain = open_addition(old_key, row)
            if plain is None:
                raise VaultKeyError(
                    f"the {row.party}'s evidence addition to order {row.order_id} does not "
                    "decrypt under the current master key: it was altered, or written under "
                    "another key; nothing was rotated"
                )
            nonce = os.urandom(12)
            session.execute(
                update(ADDITIONS)
                .where(ADDITIONS.c.order_id == row.order_id, ADDITIONS.c.party == row.party)
                .values(nonce=nonce, ciphertext=new_aead.encrypt(nonce, plain, row.associated_data))
            )
        done += len(rows)
        after = (rows[-1].order_id, rows[-1].party)
        if step is not None:
            step(len(rows))
