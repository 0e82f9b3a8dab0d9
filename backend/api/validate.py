"""Checks of path and query values, raising 422 with a message that says what to send."""

from __future__ import annotations

import re
from typing import ClassVar

from eth_utils import to_checksum_address

from backend.api.errors import ApiError

#: An address in a path or query: 20 bytes of hex after ``0x``, in any case (the checksum is not
#: required: the value is only compared, never sent anywhere).
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
#: 32 bytes of hex, with or without ``0x``.
BYTES32_PATTERN = r"^(0x)?[0-9a-fA-F]{64}$"


class BadValue(ApiError):
    """A path or query value is malformed."""

    status_code: ClassVar[int] = 422


def checksum(value: str, name: str) -> str:
    """`value` as a checksummed address.

    Raises:
        BadValue: it is not an address.
    """
    if not re.fullmatch(ADDRESS_PATTERN, value):
        raise BadValue(f"{name} must be a 0x-prefixed 20-byte hex address, got {value[:60]!r}")
    return to_checksum_address(value.lower())


def address_or_none(value: str | None, name: str) -> str | None:
    """`checksum`, passing None through."""
    return None if value is None else checksum(value, name)


def bytes32_or_none(value: str | None, name: str) -> str | None:
    """`value` as 0x-prefixed lowercase hex of 32 bytes, or None.

    Raises:
        BadValue: it is not 32 bytes of hex.
    """
    if value is None:
        return None
    text = value.lower()
    body = text[2:] if text.startswith("0x") else text
    try:
        ok = len(bytes.fromhex(body)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise BadValue(f"{name} must be 32 bytes as 64 hex digits, got {value[:80]!r}")
    return "0x" + body
