"""Sign-In with Ethereum (EIP-4361) for suppliers, arbiters and buyers, and signed requests.

The flow:

1. the client asks ``POST /auth/nonce`` for a nonce: 128 random bits, stored server-side,
   valid for at most 10 minutes and good for one sign-in only;
2. it builds an EIP-4361 message with that nonce, this server's domain and the chain id, and
   signs it with its wallet (EIP-191 ``personal_sign``);
3. ``POST /auth/verify`` checks the message, the signature and the nonce, consumes the nonce
   and answers a session token: an HMAC-signed, expiring bearer token naming the address.

Every rejection says why (a replayed message, a wrong domain, a wrong chain, an expired or
unknown nonce, a bad signature) and is answered 401 by the API.

A buyer may also authenticate a single request without a session: `verify_request_signature`
checks an EIP-191 signature over a short text naming the action, the chain, the escrow and the
time. The CLI uses it to fetch a release in one round trip.

Nonces live in the table `auth_nonces` (created by the backend's migration 0002), so that
single use holds across processes and restarts: consuming a nonce is one conditional
``UPDATE``, which only one request can win.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import siwe
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address
from sqlalchemy import BigInteger, Column, MetaData, String, Table, delete, insert, select, update

from contracts.errors import KamengError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

#: How long a nonce may be used after it was issued (the issue asks for at most 10 minutes).
NONCE_TTL_S = 600
#: How long a session token lasts.
SESSION_TTL_S = 12 * 3600
#: How far a signed request's timestamp may be from the server's clock.
REQUEST_SIGNATURE_SKEW_S = 300
#: Longest line of a SIWE message accepted (kameng's own are under 100 characters).
MAX_SIWE_LINE = 160
#: Most lines of a SIWE message accepted (the fields, a statement and a few resources).
MAX_SIWE_LINES = 24


def siwe_shape_problem(message: str) -> str | None:
    """What makes `message` too big to be worth parsing, or None.

    The SIWE parsers are slow on long input (seconds for a few kilobytes, however malformed),
    so a request is refused before parsing when a line or the line count is over its cap.
    """
    lines = message.split("\n")
    if len(lines) > MAX_SIWE_LINES:
        return f"{len(lines)} lines; at most {MAX_SIWE_LINES} are accepted"
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_SIWE_LINE:
            return (
                f"line {n} is {len(line)} characters long; at most {MAX_SIWE_LINE} are "
                "accepted: keep the statement, URI and resources short"
            )
    return None


#: The statement shown in wallets.
STATEMENT = "Sign in to kameng. This request costs no gas and moves no funds."

auth_metadata = MetaData()

#: Issued SIWE nonces. A nonce is usable once, before `expires_at`.
auth_nonces = Table(
    "auth_nonces",
    auth_metadata,
    Column("nonce", String(64), primary_key=True),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("used_at", BigInteger, nullable=True),
    Column("used_by", String(42), nullable=True),
)


def ensure_tables(engine: Engine) -> None:
    """Create the auth tables if they are missing (idempotent)."""
    auth_metadata.create_all(engine, checkfirst=True)


class AuthError(KamengError):
    """A sign-in or a token was refused. The API answers 401 with `reason`.

    Attributes:
        reason: What was wrong and what to do, in one sentence.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class IssuedNonce:
    """A fresh nonce and what the client needs to build its message."""

    nonce: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class Wallet:
    """An authenticated wallet: a checksummed address, and when its session ends."""

    address: str
    expires_at: int


@dataclass(frozen=True)
class SessionToken:
    """A bearer token for a signed-in wallet."""

    token: str
    address: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SiweAuth:
    """Issues nonces, verifies EIP-4361 messages and issues and checks session tokens.

    Args:
        domain: The RFC 4501 authority messages must name (host[:port] of this API).
        chain_id: The chain messages must name.
        secret: Key of the session tokens' HMAC (at least 32 bytes).
        nonce_ttl_s: Lifetime of a nonce; at most 600 s.
        session_ttl_s: Lifetime of a session token.
        clock: Current Unix time; tests pass their own.
    """

    def __init__(
        self,
        *,
        domain: str,
        chain_id: int,
        secret: bytes,
        nonce_ttl_s: int = NONCE_TTL_S,
        session_ttl_s: int = SESSION_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Bind to a domain, a chain and a token key.

        Raises:
            ValueError: the secret is short or the nonce lifetime is over 10 minutes.
        """
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 bytes")
        if not 0 < nonce_ttl_s <= NONCE_TTL_S:
            raise ValueError("nonces must expire within 10 minutes")
        self.domain = domain
        self.chain_id = chain_id
        self._secret = hashlib.sha256(b"kameng.session.v1" + secret).digest()
        self.nonce_ttl_s = nonce_ttl_s
        self.session_ttl_s = session_ttl_s
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    # ------------------------------------------------------------ nonces

    def issue_nonce(self, session: Session) -> IssuedNonce:
        """Store and return a fresh single-use nonce (128 random bits, 32 hex digits)."""
        now = self._now()
        nonce = secrets.token_hex(16)
        # Forget nonces that expired more than a day ago; keeping recent ones lets a replay
        # be named as such rather than as an unknown nonce.
        session.execute(delete(auth_nonces).where(auth_nonces.c.expires_at < now - 86_400))
        session.execute(
            insert(auth_nonces).values(
                nonce=nonce, issued_at=now, expires_at=now + self.nonce_ttl_s
            )
        )
        session.commit()
        return IssuedNonce(nonce=nonce, issued_at=now, expires_at=now + self.nonce_ttl_s)

    def _consume_nonce(self, session: Session, nonce: str, address: str) -> None:
        now = self._now()
        result = session.execute(
            update(auth_nonces)
            .where(
                auth_nonces.c.nonce == nonce,
                auth_nonces.c.used_at.is_(None),
                auth_nonces.c.expires_at > now,
            )
            .values(used_at=now, used_by=address)
        )
        if getattr(result, "rowcount", 0) == 1:
            session.commit()
            return
        session.rollback()
        row = session.execute(
            select(auth_nonces.c.expires_at, auth_nonces.c.used_at).where(
                auth_nonces.c.nonce == nonce
            )
        ).first()
        if row is None:
            raise AuthError(
                "unknown nonce: this server did not issue it; get one from POST /auth/nonce"
            )
        if row.used_at is not None:
            raise AuthError(
                "replayed message: its nonce was already used to sign in; "
                "get a fresh nonce from POST /auth/nonce and sign again"
            )
        raise AuthError(
            f"expired nonce: it expired at {_iso(int(row.expires_at))} (nonces last "
            f"{self.nonce_ttl_s // 60} minutes); get a fresh one from POST /auth/nonce"
        )

    # ------------------------------------------------------------ sign-in

    def message_for(self, address: str, nonce: IssuedNonce | str, uri: str) -> str:
        """The EIP-4361 text a wallet signs to sign in here (what clients build)."""
        now = self._now()
        value = nonce.nonce if isinstance(nonce, IssuedNonce) else nonce
        return build_message(
            domain=self.domain,
            address=address,
            uri=uri,
            chain_id=self.chain_id,
            nonce=value,
            issued_at=now,
        )

    def verify(self, session: Session, message: str, signature: str) -> SessionToken:
        """Check a signed EIP-4361 message, consume its nonce and open a session.

        Raises:
            AuthError: the message is malformed, names another domain or chain, has expired or
                is not yet valid, the signature is not the address's, or the nonce is unknown,
                expired or already used.
        """
        problem = siwe_shape_problem(message)
        if problem is not None:
            raise AuthError(f"malformed SIWE message: {problem}")
        try:
            # The regular-expression parser: the ABNF one takes seconds on a few kilobytes.
            parsed = siwe.SiweMessage.from_message(message, abnf=False)
        except Exception as exc:  # the parser raises ValueError, abnf errors and pydantic errors
            raise AuthError(
                f"malformed SIWE message: {type(exc).__name__}; build it as EIP-4361 describes"
            ) from exc
        if parsed.domain != self.domain:
            raise AuthError(
                f"wrong domain: the message is for {parsed.domain!r}, this server is "
                f"{self.domain!r}; sign a message for this server's domain"
            )
        if parsed.chain_id != self.chain_id:
            raise AuthError(
                f"wrong chain: the message names chain {parsed.chain_id}, this server runs on "
                f"chain {self.chain_id}; switch your wallet to chain {self.chain_id}"
            )
        try:
            parsed.verify(
                signature,
                domain=self.domain,
                chain_id=self.chain_id,
                timestamp=datetime.fromtimestamp(self._now(), UTC),
            )
        except siwe.ExpiredMessage as exc:
            raise AuthError(
                "expired message: its Expiration Time has passed; sign in again"
            ) from exc
        except siwe.NotYetValidMessage as exc:
            raise AuthError("message not yet valid: its Not Before time is in the future") from exc
        except siwe.InvalidSignature as exc:
            raise AuthError(
                f"bad signature: it was not made by {parsed.address} over this exact message"
            ) from exc
        except siwe.VerificationError as exc:
            raise AuthError(f"message refused: {type(exc).__name__}") from exc
        address = to_checksum_address(parsed.address)
        self._consume_nonce(session, parsed.nonce, address)
        return self.issue_token(address)

    # ------------------------------------------------------------ sessions

    def issue_token(self, address: str) -> SessionToken:
        """A session token for `address`, valid for `session_ttl_s`."""
        expires = self._now() + self.session_ttl_s
        payload = f"{to_checksum_address(address)}|{self.chain_id}|{expires}|{secrets.token_hex(8)}"
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        token = f"{_b64(payload.encode())}.{_b64(mac)}"
        return SessionToken(token=token, address=to_checksum_address(address), expires_at=expires)

    def authenticate(self, token: str) -> Wallet:
        """The wallet a session token names.

        Raises:
            AuthError: the token is malformed, forged, for another chain or expired.
        """
        try:
            head, tail = token.split(".", 1)
            payload = _unb64(head)
            mac = _unb64(tail)
        except (ValueError, UnicodeEncodeError) as exc:
            raise AuthError(
                "malformed session token: sign in again with POST /auth/verify"
            ) from exc
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise AuthError(
                "invalid session token: it was not issued by this server; sign in again"
            )
        try:
            address, chain, expires, _ = payload.decode().split("|")
            chain_id, expires_at = int(chain), int(expires)
        except ValueError as exc:
            raise AuthError("malformed session token: sign in again") from exc
        if chain_id != self.chain_id:
            raise AuthError(f"session token is for chain {chain_id}; sign in again on this chain")
        if expires_at <= self._now():
            raise AuthError(f"session expired at {_iso(expires_at)}; sign in again")
        return Wallet(address=address, expires_at=expires_at)

    # ------------------------------------------------------------ signed requests

    def verify_request_signature(
        self, *, action: str, escrow: str, address: str, timestamp: int, signature: str
    ) -> Wallet:
        """Check a one-off signed request (see `request_text`).

        Raises:
            AuthError: the address is malformed, the time is too far from now, or the
                signature is not the address's over the expected text.
        """
        if not is_address(address):
            raise AuthError(f"malformed address {address!r} in X-Kameng-Address")
        now = self._now()
        if abs(now - timestamp) > REQUEST_SIGNATURE_SKEW_S:
            raise AuthError(
                f"stale request signature: signed at {timestamp}, the server's time is {now}; "
                f"sign again (signatures are good for {REQUEST_SIGNATURE_SKEW_S} s)"
            )
        text = request_text(
            action=action, chain_id=self.chain_id, escrow=escrow, timestamp=timestamp
        )
        try:
            signer = Account.recover_message(encode_defunct(text=text), signature=signature)
        except Exception as exc:  # eth_account raises several types for malformed signatures
            raise AuthError("malformed request signature in X-Kameng-Signature") from exc
        if signer.lower() != address.lower():
            raise AuthError(
                f"bad request signature: it was made by {signer}, "
                f"not {to_checksum_address(address)}"
            )
        return Wallet(
            address=to_checksum_address(address), expires_at=timestamp + REQUEST_SIGNATURE_SKEW_S
        )


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
        issued_at=_iso(issued_at),
        nonce=nonce,
        statement=statement,
        expiration_time=_iso(expires_at) if expires_at is not None else None,
    )
    return str(msg.prepare_message())


def request_text(*, action: str, chain_id: int, escrow: str, timestamp: int) -> str:
    """The text a wallet signs to authenticate one request without a session.

    ``action`` names the request, for example ``release:1234``.
    """
    return (
        f"kameng request\naction: {action}\nchain: {chain_id}\n"
        f"escrow: {to_checksum_address(escrow)}\ntime: {timestamp}"
    )


def sign_message(account: LocalAccount, text: str) -> str:
    """An EIP-191 ``personal_sign`` signature, 0x-hex."""
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


__all__ = [
    "AuthError",
    "IssuedNonce",
    "NONCE_TTL_S",
    "SessionToken",
    "SiweAuth",
    "Wallet",
    "auth_metadata",
    "auth_nonces",
    "build_message",
    "ensure_tables",
    "request_text",
    "sign_message",
]
