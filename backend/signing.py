"""What a wallet signs for kameng, built the same way by the server and its clients: the
EIP-4361 (SIWE) sign-in message and the text of a signed request (`request_text`). Pure: no
database and no server code, so that `backend.client` can import it. The server's checks are
in `backend.auth`; the texts are laid out in docs/API.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import siwe
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: The statement shown in wallets.
STATEMENT = "Sign in to kameng. This request costs no gas and moves no funds."
#: First line of the signed-request text; a new layout gets a new version.
REQUEST_TEXT_HEADER = "kameng request v2"


def iso_time(ts: int) -> str:
    """Unix seconds as RFC 3339 UTC to the second (``2026-12-02T01:55:10Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SignedRequest:
    """What a signed request binds: the HTTP request as the server received it."""

    method: str
    path: str
    query: str
    body: bytes


def build_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: int,
    statement: str = STATEMENT,
    expires_at: int | None = None,
) -> str:
    """Build an EIP-4361 message text."""
    msg = siwe.SiweMessage(
        domain=domain,
        address=to_checksum_address(address),
        uri=uri,
        version="1",
        chain_id=chain_id,
        issued_at=iso_time(issued_at),
        nonce=nonce,
        statement=statement,
        expiration_time=iso_time(expires_at) if expires_at is not None else None,
    )
    return str(msg.prepare_message())


def body_digest(body: bytes) -> str:
    """The ``body-sha256`` line of a signed request: SHA-256 of the body's bytes, lowercase hex."""
    return hashlib.sha256(body).hexdigest()


def request_text(
    *,
    domain: str,
    chain_id: int,
    escrow: str,
    request: SignedRequest,
    nonce: str,
    timestamp: int,
) -> str:
    """The text a wallet signs to authenticate one request without a session.

    It binds the request's method (upper case), path (as sent, percent-encoded), raw query
    string (without ``?``; empty if none) and the SHA-256 of its body bytes (of the empty
    string if none), with this server's domain, chain and escrow, the nonce and the time.
    """
    return (
        f"{REQUEST_TEXT_HEADER}\n"
        f"domain: {domain}\n"
        f"chain: {chain_id}\n"
        f"escrow: {to_checksum_address(escrow)}\n"
        f"method: {request.method.upper()}\n"
        f"path: {request.path}\n"
        f"query: {request.query}\n"
        f"body-sha256: {body_digest(request.body)}\n"
        f"nonce: {nonce}\n"
        f"time: {timestamp}"
    )


def sign_message(account: LocalAccount, text: str) -> str:
    """An EIP-191 ``personal_sign`` signature, 0x-hex."""
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


__all__ = [
    "REQUEST_TEXT_HEADER",
    "STATEMENT",
    "SignedRequest",
    "body_digest",
    "build_message",
    "iso_time",
    "request_text",
    "sign_message",
]
