"""The ways a message leaves: one small class per channel.

A channel gets the endpoint and the message and either returns (delivered) or raises
`DeliveryFailed`. Another channel (a Telegram or WeChat Work bot, say) is one more class with a
``send`` method and a ``kind``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook

from backend.notify.catalog import render
from backend.notify.endpoints import EndpointRejected, public_addresses_only
from contracts.errors import KamengError

#: How long a receiver gets to answer.
SEND_TIMEOUT_S = 5.0


class DeliveryFailed(KamengError):
    """A message did not get through; the dispatcher retries it later."""


@dataclass(frozen=True)
class Message:
    """One message as it is sent: its id (``webhook-id``), type, time and data."""

    id: str
    type: str
    timestamp: int
    data: dict[str, object]

    def body(self) -> str:
        """The JSON body: ``{"type", "timestamp", "data"}`` as Standard Webhooks suggests."""
        stamp = datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(
            {"type": self.type, "timestamp": stamp, "data": self.data},
            separators=(",", ":"),
            sort_keys=True,
        )


@dataclass(frozen=True)
class Target:
    """Where one message goes: the endpoint's address and, for a webhook, its secret."""

    kind: str
    address: str
    secret: str | None = None


class Channel(Protocol):
    """A way out."""

    kind: str

    def send(self, target: Target, message: Message) -> None:
        """Deliver `message` to `target`.

        Raises:
            DeliveryFailed: it did not get through (the dispatcher retries).
        """


class WebhookChannel:
    """POSTs the message, signed by Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature``). Redirects are not followed and the answer's body is not read."""

    kind = "webhook"

    def __init__(self, *, allow_private: bool, timeout: float = SEND_TIMEOUT_S) -> None:
        """Bind the HTTP client (`allow_private`: development, loopback receivers allowed)."""
        self.allow_private = allow_private
        self.http = httpx.Client(timeout=timeout, follow_redirects=False)

    def send(self, target: Target, message: Message) -> None:
        """POST and require a 2xx answer.

        Raises:
            DeliveryFailed: the name now points at a private address, the receiver did not
                answer in time, or answered other than 2xx.
        """
        assert target.secret is not None, "a webhook endpoint has a secret"
        parts = urlsplit(target.address)
        if not self.allow_private and parts.hostname:
            try:
                public_addresses_only(parts.hostname, parts.port or 443)
            except EndpointRejected as exc:
                raise DeliveryFailed(str(exc)) from exc
        body = message.body()
        stamp = datetime.fromtimestamp(message.timestamp, UTC)
        signature = Webhook(target.secret).sign(message.id, stamp, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(message.timestamp),
            "webhook-signature": signature,
        }
        try:
            with self.http.stream(
                "POST", target.address, content=body.encode(), headers=headers
            ) as answer:
                status = answer.status_code  # the body is never read
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__} from the receiver") from exc
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered HTTP {status}")


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False


class EmailChannel:
    """Sends the message as a plain-text email over SMTP (aiosmtplib)."""

    kind = "email"

    def __init__(self, smtp: SmtpSettings, timeout: float = SEND_TIMEOUT_S) -> None:
        """Bind to the mail server."""
        self.smtp = smtp
        self.timeout = timeout

    def send(self, target: Target, message: Message) -> None:
        """Send one email.

        Raises:
            DeliveryFailed: the mail server refused or could not be reached.
        """
        subject, text = render(message.type, message.data)
        mail = EmailMessage()
        mail["From"] = self.smtp.sender
        mail["To"] = target.address
        mail["Subject"] = f"[kameng] {subject}"
        mail["Message-ID"] = f"<{message.id}@kameng>"
        link = message.data.get("link")
        mail.set_content(text + (f"\n\n{link}\n" if link else "\n"))
        try:
            asyncio.run(
                aiosmtplib.send(
                    mail,
                    hostname=self.smtp.host,
                    port=self.smtp.port,
                    username=self.smtp.username,
                    password=self.smtp.password,
                    start_tls=self.smtp.starttls,
                    timeout=self.timeout,
                )
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__} from the mail server") from exc


__all__ = [
    "Channel",
    "DeliveryFailed",
    "EmailChannel",
    "Message",
    "SmtpSettings",
    "Target",
    "WebhookChannel",
]
