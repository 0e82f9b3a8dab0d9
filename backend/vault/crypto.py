"""Encryption at rest: AES-256-GCM per record, data keys wrapped by the master key.

For the code at `index` of listing `listing_id`:

    ad          = "kameng.vault.v1" || uint256(listing_id) || uint256(index)
    data_key    = 32 random bytes
    ciphertext  = AES-256-GCM(data_key, nonce, salt || code, ad)          nonce: 12 random bytes
    wrapped_key = wrap_nonce || AES-256-GCM(master_key, wrap_nonce, data_key, "wrap" || ad)

The salt (which keeps commitments hiding for short codes) is encrypted together with the code,
so a database dump reveals neither. The associated data binds each record to its place: a
ciphertext copied to another listing or index fails to decrypt. `key_id` names the master key
(a hash of it), so a wrong key is reported as such rather than as corruption.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.errors import VaultKeyError

AD_DOMAIN = b"kameng.vault.v1"
WRAP_DOMAIN = b"kameng.vault.wrap.v1"
FINGERPRINT_DOMAIN = b"kameng.fingerprint.v1"
SALT_BYTES = 32


def associated_data(listing_id: int, index: int) -> bytes:
    """The associated data that binds a record to its listing and index."""
    return AD_DOMAIN + listing_id.to_bytes(32, "big") + index.to_bytes(32, "big")


def master_key_id(master_key: bytes) -> str:
    """A short public name for a master key (16 hex digits of a domain-separated hash)."""
    return hashlib.sha256(b"kameng.vault.key-id.v1" + master_key).hexdigest()[:16]


def fingerprint(key: bytes, code: bytes) -> bytes:
    """HMAC-SHA256 of a code under the fingerprint key: equal codes, equal fingerprints."""
    return hmac.new(key, FINGERPRINT_DOMAIN + code, hashlib.sha256).digest()


@dataclass(frozen=True)
class EncryptedRecord:
    """What the vault stores for one code."""

    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    key_id: str


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

    def encrypt(self, listing_id: int, index: int, salt: bytes, code: bytes) -> EncryptedRecord:
        """Encrypt `salt || code` for its place in the listing."""
        if len(salt) != SALT_BYTES:
            raise ValueError("salt must be 32 bytes")
        ad = associated_data(listing_id, index)
        data_key = os.urandom(32)
        nonce = os.urandom(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, salt + code, ad)
        wrap_nonce = os.urandom(12)
        wrapped = wrap_nonce + self._master.encrypt(wrap_nonce, data_key, WRAP_DOMAIN + ad)
        return EncryptedRecord(ciphertext, nonce, wrapped, self.key_id)

    def decrypt(self, listing_id: int, index: int, record: EncryptedRecord) -> tuple[bytes, bytes]:
        """Decrypt a record stored for (listing_id, index).

        Returns:
            (salt, code).

        Raises:
            VaultKeyError: another master key encrypted it, or the record was altered or moved.
        """
        if record.key_id != self.key_id:
            raise VaultKeyError(
                f"code {listing_id}/{index} was encrypted under master key {record.key_id}, "
                f"but the configured key is {self.key_id}; configure the original KAMENG_MASTER_KEY"
            )
        ad = associated_data(listing_id, index)
        try:
            data_key = self._master.decrypt(
                record.wrapped_key[:12], record.wrapped_key[12:], WRAP_DOMAIN + ad
            )
            plain = AESGCM(data_key).decrypt(record.nonce, record.ciphertext, ad)
        except InvalidTag as exc:
            raise VaultKeyError(
                f"code {listing_id}/{index} does not decrypt: the record was altered or moved "
                "to another listing or index"
            ) from exc
        return plain[:SALT_BYTES], plain[SALT_BYTES:]
