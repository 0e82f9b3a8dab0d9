"""Encryption at rest: AES-256-GCM per record, data keys wrapped by the master key.

For the code at `index` of listing `listing_id`:

    ad          = "kameng.vault.v1" || uint256(listing_id) || uint256(index)
    data_key    = 32 random bytes
    ciphertext  = AES-256-GCM(data_key, nonce, salt || code, ad)          nonce: 12 random bytes
    wrapped_key = wrap_nonce || AES-256-GCM(master_key, wrap_nonce, data_key, "wrap" || ad)

The supplier's note (the CSV's third column, where suppliers put PINs) is sealed under the
same data key, with its own nonce and associated data that says it is a note::

    note_ad     = "kameng.vault.note.v1" || uint256(listing_id) || uint256(index)
    sealed_note = note_nonce || AES-256-GCM(data_key, note_nonce, utf8(note), note_ad)

so a note cannot be swapped with the code, with another note, or moved to another place, and
rotating the master key re-wraps one data key per record without touching either ciphertext.

The salt (which keeps commitments hiding for short codes) is encrypted together with the code,
so a database dump reveals neither. The associated data binds each record to its place: a
ciphertext copied to another listing or index fails to decrypt. `key_id` names the master key
(a hash of it), so a wrong key is reported as such rather than as corruption. `key_check` is
the value a vault stores to recognise its master key at start-up (`backend.vault.master`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.errors import VaultKeyError

AD_DOMAIN = b"kameng.vault.v1"
WRAP_DOMAIN = b"kameng.vault.wrap.v1"
FINGERPRINT_DOMAIN = b"kameng.fingerprint.v1"
NOTE_DOMAIN = b"kameng.vault.note.v1"
KEY_CHECK_LABEL = b"kameng.vault.key-check.v1"
SALT_BYTES = 32


def associated_data(listing_id: int, index: int) -> bytes:
    """The associated data that binds a record to its listing and index."""
    return AD_DOMAIN + listing_id.to_bytes(32, "big") + index.to_bytes(32, "big")


def note_associated_data(listing_id: int, index: int) -> bytes:
    """The associated data that binds a sealed note to its listing and index, as a note."""
    return NOTE_DOMAIN + listing_id.to_bytes(32, "big") + index.to_bytes(32, "big")


def master_key_id(master_key: bytes) -> str:
    """A short public name for a master key (16 hex digits of a domain-separated hash)."""
    return hashlib.sha256(b"kameng.vault.key-id.v1" + master_key).hexdigest()[:16]


def key_check(master_key: bytes) -> bytes:
    """HMAC-SHA256 of a fixed label under the master key: what a vault stores to recognise it."""
    return hmac.new(master_key, KEY_CHECK_LABEL, hashlib.sha256).digest()


def fingerprint(key: bytes, code: bytes) -> bytes:
    """HMAC-SHA256 of a code under the fingerprint key: equal codes, equal fingerprints."""
    return hmac.new(key, FINGERPRINT_DOMAIN + code, hashlib.sha256).digest()


@dataclass(frozen=True)
class EncryptedRecord:
    """What the vault stores for one code (and its note, if the supplier wrote one)."""

    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    key_id: str
    sealed_note: bytes | None = None


class CodeCipher:
    """Encrypts and decrypts vault records under one master key."""

    def __init__(self, master_key: bytes) -> None:
        """Bind to a 32-byte master key.

        Raises:
            ValueError: the key is not 32 bytes.
        """
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._master = AESGCM(master_key)
        self.key_id = master_key_id(master_key)

    def __repr__(self) -> str:
        return f"CodeCipher(key_id={self.key_id!r})"

    def encrypt(
        self, listing_id: int, index: int, salt: bytes, code: bytes, note: str | None = None
    ) -> EncryptedRecord:
        """Encrypt `salt || code` (and `note`, if given) for its place in the listing."""
        if len(salt) != SALT_BYTES:
            raise ValueError("salt must be 32 bytes")
        ad = associated_data(listing_id, index)
        data_key = os.urandom(32)
        nonce = os.urandom(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, salt + code, ad)
        wrapped = self._wrap(listing_id, index, data_key)
        sealed = None if note is None else _seal_note(data_key, listing_id, index, note)
        return EncryptedRecord(ciphertext, nonce, wrapped, self.key_id, sealed)

    def _wrap(self, listing_id: int, index: int, data_key: bytes) -> bytes:
        wrap_nonce = os.urandom(12)
        ad = WRAP_DOMAIN + associated_data(listing_id, index)
        return wrap_nonce + self._master.encrypt(wrap_nonce, data_key, ad)

    def _check_key_id(self, listing_id: int, index: int, record: EncryptedRecord) -> None:
        if record.key_id != self.key_id:
            raise VaultKeyError(
                f"code {listing_id}/{index} was encrypted under master key {record.key_id}, "
                f"but the configured key is {self.key_id}; configure the original KAMENG_MASTER_KEY"
            )

    def _data_key(self, listing_id: int, index: int, record: EncryptedRecord) -> bytes:
        """Unwrap a record's data key.

        Raises:
            VaultKeyError: another master key wrapped it, or it was altered or moved.
        """
        self._check_key_id(listing_id, index, record)
        ad = WRAP_DOMAIN + associated_data(listing_id, index)
        try:
            return self._master.decrypt(record.wrapped_key[:12], record.wrapped_key[12:], ad)
        except InvalidTag as exc:
            raise VaultKeyError(
                f"code {listing_id}/{index} does not decrypt: the record was altered or moved "
                "to another listing or index"
            ) from exc

    def seal_note(self, listing_id: int, index: int, record: EncryptedRecord, note: str) -> bytes:
        """Seal `note` under an existing record's data key (for notes stored before 0004).

        Raises:
            VaultKeyError: the record's data key does not unwrap under this master key.
        """
        return _seal_note(self._data_key(listing_id, index, record), listing_id, index, note)

    def decrypt_note(self, listing_id: int, index: int, record: EncryptedRecord) -> str | None:
        """The record's note in plaintext, or None if it has none.

        Raises:
            VaultKeyError: another master key encrypted it, or the note was altered or moved.
        """
        if record.sealed_note is None:
            return None
        data_key = self._data_key(listing_id, index, record)
        sealed = record.sealed_note
        try:
            plain = AESGCM(data_key).decrypt(
                sealed[:12], sealed[12:], note_associated_data(listing_id, index)
            )
        except InvalidTag as exc:
            raise VaultKeyError(
                f"the note of code {listing_id}/{index} does not decrypt: it was altered or "
                "moved to another listing or index"
            ) from exc
        return plain.decode("utf-8")

    def rewrap(
        self, listing_id: int, index: int, record: EncryptedRecord, new: CodeCipher
    ) -> EncryptedRecord:
        """The same record with its data key wrapped under `new`'s master key instead of ours.

        The code's and the note's ciphertexts do not change: only the wrapped key and key id.

        Raises:
            VaultKeyError: the record's data key does not unwrap under this master key.
        """
        data_key = self._data_key(listing_id, index, record)
        return replace(
            record, wrapped_key=new._wrap(listing_id, index, data_key), key_id=new.key_id
        )

    def decrypt(self, listing_id: int, index: int, record: EncryptedRecord) -> tuple[bytes, bytes]:
        """Decrypt a record stored for (listing_id, index).

        Returns:
            (salt, code).

        Raises:
            VaultKeyError: another master key encrypted it, or the record was altered or moved.
        """
        data_key = self._data_key(listing_id, index, record)
        ad = associated_data(listing_id, index)
        try:
            plain = AESGCM(data_key).decrypt(record.nonce, record.ciphertext, ad)
        except InvalidTag as exc:
            raise VaultKeyError(
                f"code {listing_id}/{index} does not decrypt: the record was altered or moved "
                "to another listing or index"
            ) from exc
        return plain[:SALT_BYTES], plain[SALT_BYTES:]


def _seal_note(data_key: bytes, listing_id: int, index: int, note: str) -> bytes:
    nonce = os.urandom(12)
    ad = note_associated_data(listing_id, index)
    return nonce + AESGCM(data_key).encrypt(nonce, note.encode("utf-8"), ad)
