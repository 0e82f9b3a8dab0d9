"""Settings: development secrets work in development and are refused anywhere else."""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from backend.config import DEV_MASTER_KEY, Settings
from backend.errors import ConfigError


def test_development_runs_with_zero_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_"):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "development"
    assert settings.database_url.startswith("sqlite:///./var/")
    assert settings.rpc_url is None
    assert len(settings.master_key_bytes) == 32
    assert "0x" not in repr(settings)  # secrets are masked


def test_development_secrets_are_refused_in_production() -> None:
    with pytest.raises(ConfigError, match="KAMENG_MASTER_KEY, KAMENG_FINGERPRINT_KEY"):
        Settings(environment="production", delivery_key=os.urandom(32).hex())


def test_production_needs_a_delivery_key() -> None:
    with pytest.raises(ConfigError, match="KAMENG_DELIVERY_KEY is required"):
        Settings(
            environment="production",
            master_key=os.urandom(32).hex(),
            fingerprint_key=os.urandom(32).hex(),
        )


def test_production_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    monkeypatch.setenv("KAMENG_ENVIRONMENT", "production")
    monkeypatch.setenv("KAMENG_MASTER_KEY", "0x" + os.urandom(32).hex())
    monkeypatch.setenv("KAMENG_FINGERPRINT_KEY", os.urandom(32).hex())
    monkeypatch.setenv("KAMENG_DELIVERY_KEY", account.key.hex())
    monkeypatch.setenv("KAMENG_DATABASE_URL", "postgresql+psycopg://kameng@db/kameng")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.delivery_account().address == account.address
    assert settings.database_url.startswith("postgresql")


@pytest.mark.parametrize("bad", ["", "xyz", "0x1234", "ab" * 31])
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        Settings(master_key=bad)


def test_missing_delivery_key_is_explained() -> None:
    with pytest.raises(ConfigError, match="setDeliveryKey"):
        Settings().delivery_account()
    assert Settings(master_key=DEV_MASTER_KEY).environment == "development"
