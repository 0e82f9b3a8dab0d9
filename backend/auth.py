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

A session token names the wallet, the chain and the escrow, and carries a random id and the
time it was issued; ``POST /auth/logout`` revokes it (or every token of the wallet issued until
then), and every request checks the revocations (table ``auth_revocations``).

A wallet may also authenticate a single request without a session: `verify_request_signature`
checks an EIP-191 signature over `request_text`, which binds the server's domain, the chain, the
escrow, the method, the path, the query string, a SHA-256 of the body, a single-use nonce and
the time (at most `REQUEST_SIGNATURE_SKEW_S` either side of the server's clock). A captured
signature therefore authorizes that one request once, and nothing else. The CLI uses it to
fetch a release in one round trip, and a supplier's disclosure of vault codes requires it.

Nonces live in the tables `auth_nonces` and `request_nonces` (backend migrations 0002 and
0005), so that single use holds across processes and restarts: consuming a sign-in nonce is one
conditional ``UPDATE`` and a request nonce one ``INSERT`` on its primary key, which only one
request can win.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
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
from sqlalchemy.exc import IntegrityError

from backend.signing import (
    REQUEST_TEXT_HEADER,
    STATEMENT,
    SignedRequest,
    body_digest,
    build_message,
    iso_time,
    request_text,
    sign_message,
)
from contracts.errors import KamengError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: How long a nonce may be used after it was issued (the issue asks for at most 10 minutes).
NONCE_TTL_S = 600
#: How long a session token lasts.
SESSION_TTL_S = 12 * 3600
#: How far a signed request's timestamp may be from the server's clock, either way.
REQUEST_SIGNATURE_SKEW_S = 60
#: A signed request's nonce: 32 to 64 lowercase hex digits (128 to 256 bits).
REQUEST_NONCE_RE = re.compile(r"[0-9a-f]{32,64}")
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


#: Nonces of signed requests already accepted. A row lives until its request's window closed.
request_nonces = Table(
    "request_nonces",
    auth_metadata,
    Column("nonce", String(64), primary_key=True),
    Column("address", String(42), nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

#: Revoked session tokens: ``t:<token id>`` revokes one token, ``a:<address>`` every token of
#: the address issued up to ``revoked_ms``. A row is kept until every token it revokes expired.
auth_revocations = Table(
    "auth_revocations",
    auth_metadata,
    Column("key", String(80), primary_key=True),
    Column("revoked_ms", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)


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
    """An authenticated wallet.

    Attributes:
        address: The checksummed address.
        expires_at: When its session (or its signed request's window) ends.
        token_id: The session token's id, or None for a signed request.
        signed_request: Whether this request itself was signed by the wallet (a fresh signature
            naming this method, path, query and body), rather than carried by a session token.
    """

    address: str
    expires_at: int
    token_id: str | None = None
    signed_request: bool = False


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


class SiweAuth:
    """Issues nonces, verifies EIP-4361 messages and issues and checks session tokens.

    Args:
        domain: The RFC 4501 authority messages must name (host[:port] of this API).
        chain_id: The chain messages must name.
        escrow: The escrow this server serves; tokens and signed requests name it.
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
        escrow: str,
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
        self.escrow = to_checksum_address(escrow)
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
            f"expired nonce: it expired at {iso_time(int(row.expires_at))} (nonces last "
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

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def issue_token(self, address: str) -> SessionToken:
        """A session token for `address` on this chain and escrow, valid for `session_ttl_s`."""
        issued_ms = self._now_ms()
        expires = issued_ms // 1000 + self.session_ttl_s
        who = to_checksum_address(address)
        payload = (
            f"v2|{who}|{self.chain_id}|{self.escrow}|{issued_ms}|{expires}|{secrets.token_hex(12)}"
        )
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        token = f"{_b64(payload.encode())}.{_b64(mac)}"
        return SessionToken(token=token, address=who, expires_at=expires)

    def authenticate(self, token: str, *, session: Session) -> Wallet:
        """The wallet a session token names.

        Raises:
            AuthError: the token is malformed, forged, for another chain or escrow, expired or
                revoked.
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
            version, address, chain, escrow, issued, expires, token_id = payload.decode().split("|")
            chain_id, issued_ms, expires_at = int(chain), int(issued), int(expires)
        except ValueError as exc:
            raise AuthError("malformed session token: sign in again") from exc
        if version != "v2":
            raise AuthError("outdated session token: sign in again")
        if chain_id != self.chain_id:
            raise AuthError(f"session token is for chain {chain_id}; sign in again on this chain")
        if escrow != self.escrow:
            raise AuthError(
                f"session token is for escrow {escrow}, this server serves {self.escrow}; "
                "sign in again here"
            )
        if expires_at <= self._now():
            raise AuthError(f"session expired at {iso_time(expires_at)}; sign in again")
        revoked = session.execute(
            select(auth_revocations.c.key, auth_revocations.c.revoked_ms).where(
                auth_revocations.c.key.in_([f"t:{token_id}", f"a:{address}"])
            )
        ).all()
        for key, revoked_ms in revoked:
            if key.startswith("t:") or issued_ms <= int(revoked_ms):
                raise AuthError("session revoked: it was signed out; sign in again")
        return Wallet(address=address, expires_at=expires_at, token_id=token_id)

    def revoke(self, session: Session, wallet: Wallet, *, everywhere: bool = False) -> None:
        """Sign out: revoke `wallet`'s token, or every token of its address issued until now.

        Raises:
            AuthError: `everywhere` is false and the wallet came with no session token.
        """
        now = self._now()
        if everywhere:
            key = f"a:{wallet.address}"
            expires = now + self.session_ttl_s
        elif wallet.token_id is not None:
            key, expires = f"t:{wallet.token_id}", wallet.expires_at
        else:
            raise AuthError("a signed request has no session to sign out of; send the token")
        session.execute(delete(auth_revocations).where(auth_revocations.c.expires_at < now))
        session.execute(delete(auth_revocations).where(auth_revocations.c.key == key))
        session.execute(
            insert(auth_revocations).values(key=key, revoked_ms=self._now_ms(), expires_at=expires)
        )
        session.commit()

    # ------------------------------------------------------------ signed requests

    def verify_request_signature(
        self,
        session: Session,
        *,
        request: SignedRequest,
        address: str,
        timestamp: int,
        nonce: str,
        signature: str,
    ) -> Wallet:
        """Check a one-off signed request (see `request_text`) and consume its nonce.

        The nonce is recorded only once the signature holds, so a forged request cannot use up
        someone else's nonce.

        Raises:
            AuthError: the address or the nonce is malformed, the time is more than
                `REQUEST_SIGNATURE_SKEW_S` from now, the signature is not the address's over
                this exact request, or the nonce was used before.
        """
        if not is_address(address):
            raise AuthError(f"malformed address {address!r} in X-Kameng-Address")
        if not REQUEST_NONCE_RE.fullmatch(nonce):
            raise AuthError(
                "X-Kameng-Nonce must be 32 to 64 lowercase hex digits, fresh for every request"
            )
        now = self._now()
        if abs(now - timestamp) > REQUEST_SIGNATURE_SKEW_S:
            raise AuthError(
                f"stale request signature: signed at {timestamp}, the server's time is {now}; "
                f"sign again (a signature is good for {REQUEST_SIGNATURE_SKEW_S} s either side "
                "of the server's clock: check your clock)"
            )
        text = request_text(
            domain=self.domain,
            chain_id=self.chain_id,
            escrow=self.escrow,
            request=request,
            nonce=nonce,
            timestamp=timestamp,
        )
        try:
            signer = Account.recover_message(encode_defunct(text=text), signature=signature)
        except Exception as exc:  # eth_account raises several types for malformed signatures
            raise AuthError("malformed request signature in X-Kameng-Signature") from exc
        if signer.lower() != address.lower():
            raise AuthError(
                f"bad request signature: it was not made by {to_checksum_address(address)} over "
                "this exact request (domain, chain, escrow, method, path, query, body, nonce "
                "and time, as docs/API.md lays out)"
            )
        who = to_checksum_address(address)
        expires = timestamp + REQUEST_SIGNATURE_SKEW_S
        session.execute(delete(request_nonces).where(request_nonces.c.expires_at < now))
        try:
            session.execute(
                insert(request_nonces).values(nonce=nonce, address=who, expires_at=expires)
            )
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise AuthError(
                "replayed request: its nonce was already used; sign every request with a "
                "fresh nonce"
            ) from exc
        return Wallet(address=who, expires_at=expires, signed_request=True)


__all__ = [
    "REQUEST_TEXT_HEADER",
    "STATEMENT",
    "AuthError",
    "IssuedNonce",
    "NONCE_TTL_S",
    "REQUEST_SIGNATURE_SKEW_S",
    "SessionToken",
    "SignedRequest",
    "SiweAuth",
    "Wallet",
    "auth_metadata",
    "auth_nonces",
    "auth_revocations",
    "body_digest",
    "build_message",
    "request_nonces",
    "request_text",
    "sign_message",
]
