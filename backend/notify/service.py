"""Wiring: the channels a server's settings allow, and the producer and dispatcher it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.notify.channels import Channel, EmailChannel, SmtpSettings, WebhookChannel
from backend.notify.dispatcher import Dispatcher
from backend.notify.producer import Producer

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from backend.config import Settings


def smtp_of(settings: Settings) -> SmtpSettings | None:
    """The mail server the settings name, or None when email is off."""
    if not settings.smtp_host:
        return None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
    )


def channels_for(settings: Settings) -> dict[str, Channel]:
    """One channel per endpoint kind this server can send to."""
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(allow_private=settings.notify_private_ok)
    }
    smtp = smtp_of(settings)
    if smtp is not None:
        channels["email"] = EmailChannel(smtp)
    return channels


def dispatcher_for(settings: Settings, session_factory: Callable[[], Session]) -> Dispatcher:
    """The dispatcher for a server's settings."""
    return Dispatcher(
        session_factory,
        channels_for(settings),
        settings.master_key_bytes,
        retry_budget_s=settings.notify_retry_budget_seconds,
        backoff_base_s=settings.notify_backoff_base_seconds,
        backoff_max_s=settings.notify_backoff_max_seconds,
    )


def producer_for(
    settings: Settings,
    session_factory: Callable[[], Session],
    public_url: str | Callable[[], str | None] | None,
) -> Producer:
    """The producer for a server's settings."""
    return Producer(
        session_factory, public_url=public_url, confirmations=settings.notify_confirmations
    )


__all__ = ["channels_for", "dispatcher_for", "producer_for", "smtp_of"]
