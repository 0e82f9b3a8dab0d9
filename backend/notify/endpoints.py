"""What may be subscribed, and the webhooks' signing secrets.

A webhook URL must be ``http`` or ``https``, carry no user name or password, and (outside
development) resolve only to public addresses: a subscription cannot make the server call its
own loopback, its private network or a cloud metadata address. The check runs when the endpoint
is created and again before every delivery (a name can be re-pointed later). An ``https`` URL
whose TLS handshake fails is refused when it is created.

Each webhook has a Standard Webhooks secret (``whsec_`` and base64 of 32 random bytes), shown
to its owner once, stored sealed (AES-256-GCM under ``HMAC-SHA256(master key,
"kameng.notify.secrets.v1")``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.errors import KamengError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: Longest URL or address accepted.
MAX_TARGET = 2048
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z]{2,24}")
_SECRET_AD = b"kameng.notify.secret"


class EndpointRejected(KamengError):
    """A subscription was refused; the API answers 422 with the reason."""


def public_addresses_only(host: str, port: int) -> None:
    """Refuse a host that resolves to anything but public addresses.

    Raises:
        EndpointRejected: the name does not resolve, or one of its addresses is loopback,
            private, link-local, multicast or otherwise not global.
    """
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise EndpointRejected(f"{host!r} does not resolve ({exc.strerror or exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise EndpointRejected(
                f"{host!r} points at {address}, a private, loopback or reserved address; "
                "give a public URL (private addresses are allowed only in development)"
            )


def check_webhook_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Check a webhook URL; return its host and port.

    Raises:
        EndpointRejected: not http(s), credentials in it, too long, no host, or (unless
            `allow_private`) a host that is not public.
    """
    if len(url) > MAX_TARGET:
        raise EndpointRejected(f"the URL is over {MAX_TARGET} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointRejected(f"not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise EndpointRejected(
            f"a webhook URL starts with https:// (or http://), not {parts.scheme or 'nothing'}:"
        )
    if parts.username is not None or parts.password is not None:
        raise EndpointRejected("put no user name or password in the URL; the secret signs it")
    if not parts.hostname:
        raise EndpointRejected("the URL names no host")
    port = port or (443 if parts.scheme == "https" else 80)
    if not allow_private:
        public_addresses_only(parts.hostname, port)
    return parts.hostname, port


def check_tls(host: str, port: int, timeout: float = 5.0) -> None:
    """Try a TLS handshake with certificate and host name checks.

    A host that does not answer is let through (a receiver may be down for a while); one that
    answers with a certificate that does not verify is not.

    Raises:
        EndpointRejected: the handshake failed on the certificate or the protocol.
    """
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLError as exc:
        raise EndpointRejected(
            f"TLS with {host}:{port} failed ({exc.reason or type(exc).__name__}): the receiver "
            "needs a certificate that verifies for its name"
        ) from exc
    except OSError:
        return


def check_email(address: str) -> None:
    """Check an email address's shape.

    Raises:
        EndpointRejected: not one address (line breaks, spaces, no domain...).
    """
    if len(address) > 254 or not _EMAIL.fullmatch(address):
        raise EndpointRejected("not an email address like name@example.com")


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


class SecretBox:
    """Seals and opens the endpoints' signing secrets under a key derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        """Derive the key."""
        key = hmac.new(master_key, b"kameng.notify.secrets.v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, secret: str) -> bytes:
        """Nonce and ciphertext of `secret`."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode("ascii"), _SECRET_AD)

    def open(self, sealed: bytes) -> str:
        """The secret `seal` sealed (raises `cryptography.exceptions.InvalidTag` if altered)."""
        return self._aead.decrypt(sealed[:12], sealed[12:], _SECRET_AD).decode("ascii")


def reseal_secrets(session: Session, old_key: bytes, new_key: bytes) -> int:
    """Re-seal every endpoint's signing secret from `old_key` to `new_key` (inside the master
    key's rotation, in its transaction); returns how many were re-sealed.

    Raises:
        cryptography.exceptions.InvalidTag: a secret was not sealed under `old_key`.
    """
    from sqlalchemy import select

    from backend.notify.models import Endpoint

    old, new = SecretBox(old_key), SecretBox(new_key)
    count = 0
    for endpoint in session.scalars(select(Endpoint).where(Endpoint.secret_sealed.is_not(None))):
        assert endpoint.secret_sealed is not None
        endpoint.secret_sealed = new.seal(old.open(endpoint.secret_sealed))
        count += 1
    session.flush()
    return count


__all__ = [
    "EndpointRejected",
    "SecretBox",
    "check_email",
    "check_tls",
    "check_webhook_url",
    "new_secret",
    "public_addresses_only",
    "reseal_secrets",
]
