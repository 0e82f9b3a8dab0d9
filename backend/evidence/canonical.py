"""Canonical JSON and the hashes of an evidence bundle (docs/PROTOCOL.md, "Evidence bundle").

Canonical form (a subset of RFC 8785, JCS): UTF-8; object keys sorted by code point; no
whitespace outside strings; strings escaped as JSON requires and nothing more (non-ASCII kept as
UTF-8); numbers are integers in [0, 2^53), never floats, so that every JSON library reads them
exactly (larger integers travel as decimal strings); no duplicate keys. A document is canonical
when re-serializing what it parses to gives back the same bytes.

Hashes follow ERC-1497: ``selfHash`` and ``fileHash`` are multihashes (keccak-256, multicodec
0x1b, length 0x20) written in base58btc. ``selfHash`` hashes the canonical document without its
``selfHash`` key; the 32-byte digest inside it is the bundle hash that a ruling cites on-chain.
"""

from __future__ import annotations

import json
from typing import Any

from eth_utils import keccak

from backend.errors import JsonTooDeep
from backend.evidence.errors import BundleFormatError
from backend.limits import check_json_depth

#: multicodec of keccak-256, and its digest length.
KECCAK_256_CODE = 0x1B
DIGEST_LENGTH = 32
#: Integers at or above this travel as strings.
MAX_JSON_INT = 2**53
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not 0 <= value < MAX_JSON_INT:
            raise BundleFormatError(
                "canonical", f"{path}: integer {value} outside [0, 2^53); write it as a string"
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BundleFormatError("canonical", f"{path}: non-string key {key!r}")
            _check_value(item, f"{path}.{key}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]")
        return
    raise BundleFormatError("canonical", f"{path}: {type(value).__name__} is not allowed")


def dumps(value: Any) -> bytes:
    """The canonical bytes of a JSON value.

    Raises:
        BundleFormatError: the value holds a float, a negative or too large integer, a type
            JSON does not have, or a string that is not Unicode text (an unpaired surrogate).
    """
    _check_value(value, "$")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, written as \ud800 in the JSON
        raise BundleFormatError(
            "canonical", f"a string holds an unpaired surrogate (U+{ord(text[exc.start]):04X})"
        ) from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BundleFormatError("json", f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise BundleFormatError("json", f"number {text} is not an integer")


def _no_constant(text: str) -> Any:
    raise BundleFormatError("json", f"{text} is not JSON")


def loads(data: bytes) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate keys, no floats, no NaN, at most
    `backend.limits.MAX_JSON_DEPTH` levels of nesting.

    Raises:
        BundleFormatError: the bytes are not such JSON (claim ``json``).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleFormatError("json", f"not UTF-8 at byte {exc.start}") from exc
    try:
        check_json_depth(data, "the bundle")
    except JsonTooDeep as exc:
        raise BundleFormatError("json", str(exc)) from exc
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except json.JSONDecodeError as exc:
        raise BundleFormatError("json", f"not JSON: {exc.msg} at byte {exc.pos}") from exc


def b58encode(data: bytes) -> str:
    """Bitcoin's base58 alphabet, leading zero bytes as ``1``."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = _B58[rem] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`.

    Raises:
        ValueError: a character outside the alphabet.
    """
    n = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"{ch!r} is not a base58 character")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def multihash(digest: bytes) -> str:
    """The base58btc keccak-256 multihash of a 32-byte digest."""
    if len(digest) != DIGEST_LENGTH:
        raise ValueError("a keccak-256 digest is 32 bytes")
    return b58encode(bytes([KECCAK_256_CODE, DIGEST_LENGTH]) + digest)


def digest_of(multihash_text: str) -> bytes:
    """The 32-byte keccak-256 digest inside a multihash.

    Raises:
        ValueError: not a base58btc keccak-256 multihash.
    """
    raw = b58decode(multihash_text)
    if len(raw) != 2 + DIGEST_LENGTH or raw[0] != KECCAK_256_CODE or raw[1] != DIGEST_LENGTH:
        raise ValueError("not a keccak-256 multihash (0x1b20 || 32 bytes, base58btc)")
    return raw[2:]


def keccak_multihash(data: bytes) -> str:
    """ERC-1497 hash of some bytes: the keccak-256 multihash, base58btc."""
    return multihash(keccak(data))


def bundle_hash(document: dict[str, Any]) -> bytes:
    """keccak256 of the canonical document without ``selfHash``: what a ruling cites on-chain."""
    body = {k: v for k, v in document.items() if k != "selfHash"}
    return keccak(dumps(body))


def self_hash(document: dict[str, Any]) -> str:
    """The ERC-1497 ``selfHash`` of a document (its own ``selfHash`` key left out)."""
    return multihash(bundle_hash(document))


def seal(document: dict[str, Any]) -> bytes:
    """Set ``selfHash`` and return the canonical bytes of the finished document."""
    document = dict(document)
    document["selfHash"] = self_hash(document)
    return dumps(document)
