"""Encryption at rest: records decrypt only in place and only under their master key."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from backend.errors import VaultKeyError
from backend.vault.crypto import CodeCipher, fingerprint


def test_record_round_trips_and_hides_the_code() -> None:
    cipher = CodeCipher(os.urandom(32))
    salt, code = os.urandom(32), b"KMG-SECRET-0001"
    record = cipher.encrypt(7, 42, salt, code)
    assert code not in record.ciphertext and salt not in record.ciphertext
    assert len(record.nonce) == 12 and len(record.wrapped_key) == 60
    assert cipher.decrypt(7, 42, record) == (salt, code)


def test_every_record_has_its_own_data_key_and_nonce() -> None:
    cipher = CodeCipher(os.urandom(32))
    a = cipher.encrypt(1, 0, b"\0" * 32, b"SAME")
    b = cipher.encrypt(1, 0, b"\0" * 32, b"SAME")
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key


@pytest.mark.parametrize(("listing", "index"), [(7, 43), (8, 42)])
def test_record_moved_to_another_place_does_not_decrypt(listing: int, index: int) -> None:
    cipher = CodeCipher(os.urandom(32))
    record = cipher.encrypt(7, 42, os.urandom(32), b"KMG-1")
    with pytest.raises(VaultKeyError, match="altered or moved"):
        cipher.decrypt(listing, index, record)


def test_altered_ciphertext_does_not_decrypt() -> None:
    cipher = CodeCipher(os.urandom(32))
    record = cipher.encrypt(1, 1, os.urandom(32), b"KMG-1")
    flipped = bytes([record.ciphertext[0] ^ 1]) + record.ciphertext[1:]
    with pytest.raises(VaultKeyError):
        cipher.decrypt(1, 1, replace(record, ciphertext=flipped))


def test_wrong_master_key_is_named() -> None:
    record = CodeCipher(os.urandom(32)).encrypt(1, 1, os.urandom(32), b"KMG-1")
    other = CodeCipher(os.urandom(32))
    with pytest.raises(VaultKeyError, match="configure the original KAMENG_MASTER_KEY"):
        other.decrypt(1, 1, record)
    with pytest.raises(VaultKeyError, match="altered"):
        other.decrypt(1, 1, replace(record, key_id=other.key_id))


def test_fingerprints_are_keyed_and_deterministic() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    assert fingerprint(k1, b"KMG-1") == fingerprint(k1, b"KMG-1")
    assert fingerprint(k1, b"KMG-1") != fingerprint(k1, b"KMG-2")
    assert fingerprint(k1, b"KMG-1") != fingerprint(k2, b"KMG-1")


def test_cipher_repr_shows_only_the_key_id() -> None:
    key = os.urandom(32)
    text = repr(CodeCipher(key))
    assert key.hex() not in text and "key_id" in text
