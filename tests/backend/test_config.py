"""Settings: production by default; development secrets work in development and are refused
anywhere else."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from backend.config import DEV_MASTER_KEY, Settings
from backend.errors import ConfigError


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_"):
            monkeypatch.delenv(name)


def test_production_is_the_default_and_names_every_missing_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19, finding 1: with nothing configured, settings were development, so a real
    deployment ran on public keys; now they refuse, one line per missing secret."""
    _clean(monkeypatch)
    with pytest.raises(ConfigError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    lines = str(refused.value).splitlines()
    assert "KAMENG_ENVIRONMENT=production" in lines[0]
    for name in (
        "KAMENG_MASTER_KEY",
        "KAMENG_FINGERPRINT_KEY",
        "KAMENG_SESSION_KEY",
        "KAMENG_DELIVERY_KEY",
    ):
        assert sum(line.strip().startswith(name) for line in lines[1:]) == 1, name
    assert "os.urandom(32).hex()" in str(refused.value)


def test_development_runs_with_zero_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch)
    settings = Settings(_env_file=None, environment="development")  # type: ignore[call-arg]
    assert settings.database_url.startswith("sqlite:///./var/")
    assert settings.rpc_url is None
    assert len(settings.master_key_bytes) == 32
    assert settings.session_key_bytes != settings.master_key_bytes
    assert "0x" not in repr(settings)  # secrets are masked


def test_development_secrets_are_refused_in_production() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(environment="production", delivery_key=os.urandom(32).hex())
    text = str(refused.value)
    assert "KAMENG_MASTER_KEY is missing" in text and "KAMENG_SESSION_KEY is missing" in text
    assert "KAMENG_DELIVERY_KEY" not in text


def test_production_needs_a_delivery_key_and_a_separate_session_key() -> None:
    secrets = {
        "master_key": os.urandom(32).hex(),
        "fingerprint_key": os.urandom(32).hex(),
        "session_key": os.urandom(32).hex(),
    }
    with pytest.raises(ConfigError, match="KAMENG_DELIVERY_KEY is missing"):
        Settings(environment="production", **secrets)
    same = {**secrets, "session_key": secrets["master_key"]}
    with pytest.raises(ConfigError, match="KAMENG_SESSION_KEY equals KAMENG_MASTER_KEY"):
        Settings(environment="production", delivery_key=os.urandom(32).hex(), **same)


def test_production_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch)
    account = Account.create()
    monkeypatch.setenv("KAMENG_MASTER_KEY", "0x" + os.urandom(32).hex())
    monkeypatch.setenv("KAMENG_FINGERPRINT_KEY", os.urandom(32).hex())
    monkeypatch.setenv("KAMENG_SESSION_KEY", os.urandom(32).hex())
    monkeypatch.setenv("KAMENG_DELIVERY_KEY", account.key.hex())
    monkeypatch.setenv("KAMENG_DATABASE_URL", "postgresql+psycopg://kameng@db/kameng")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "production"
    assert settings.delivery_account().address == account.address
    assert settings.database_url.startswith("postgresql")


@pytest.mark.parametrize("bad", ["", "xyz", "0x1234", "ab" * 31])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        Settings(environment="development", master_key=bad)


def test_missing_delivery_key_is_explained() -> None:
    with pytest.raises(ConfigError, match="setDeliveryKey"):
        Settings(environment="development").delivery_account()
    assert Settings(environment="development", master_key=DEV_MASTER_KEY).master_key_bytes
