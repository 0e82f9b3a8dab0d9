"""Backend settings from the environment (prefix ``KAMENG_``), a ``.env`` file, or ``kameng.toml``.

Precedence, highest first: values passed in code, environment variables, ``.env``, then the
configuration file: ``kameng.toml`` in the working directory or the file ``KAMENG_CONFIG``
names. Its keys are the settings' names in lower case without the prefix (``database_url =
"postgresql://…"``, ``master_key = "0x…"``); an unknown key is refused. Every key is documented
in ``docs/CONFIG.md``. A file holding secrets must be readable by its owner only (0600).

Production is the default. Every secret has a public development value so that the embedded
chain runs with zero configuration, but those values are accepted only in development, which
`kameng serve` chooses on the embedded chain alone (or with ``--dev`` on a local node). Anything
else refuses to start, naming each missing secret::

    KAMENG_DATABASE_URL=postgresql+psycopg://kameng@db/kameng
    KAMENG_RPC_URL=https://node.example
    KAMENG_MASTER_KEY=0x<64 hex>        # AES-256 key wrapping the per-record data keys
    KAMENG_FINGERPRINT_KEY=0x<64 hex>   # HMAC key of duplicate-detection fingerprints
    KAMENG_SESSION_KEY=0x<64 hex>       # HMAC key of sign-in tokens (not the master key)
    KAMENG_DELIVERY_KEY=0x<64 hex>      # private key of the supplier's delivery account

Make each with ``python -c 'import os; print(os.urandom(32).hex())'``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from backend.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


def _dev_secret(name: str) -> str:
    """A fixed, public development value for a secret: anyone can compute it, so it protects
    nothing and is refused outside development."""
    return "0x" + hashlib.sha256(f"kameng development {name} - not a secret".encode()).hexdigest()


DEV_MASTER_KEY = _dev_secret("master key")
DEV_FINGERPRINT_KEY = _dev_secret("fingerprint key")
DEV_SESSION_KEY = _dev_secret("session key")

#: How to make a secret, for error messages.
MAKE_KEY = "make one with `python -c 'import os; print(os.urandom(32).hex())'`"


def parse_key32(value: str, name: str) -> bytes:
    """Parse a 32-byte key written as 64 hex digits (with or without ``0x``).

    Raises:
        ConfigError: it is not 32 bytes of hex.
    """
    text = value.strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            f"{name} must be 32 bytes written as 64 hex digits; generate one with "
            "`python -c 'import os; print(os.urandom(32).hex())'`"
        )
    return raw


CONFIG_ENV = "KAMENG_CONFIG"
#: Keys of the configuration file that are not `Settings` fields but the commands' own options
#: (`kameng serve`, `index`, `keeper`): where the node and the deployment are.
COMMAND_KEYS = frozenset({"manifest", "keystore"})
#: Settings that are secrets: a configuration file holding one must be private.
SECRET_KEYS = frozenset(
    {"master_key", "fingerprint_key", "session_key", "delivery_key", "keeper_key", "smtp_password"}
)


def config_path() -> Path:
    """The configuration file: ``KAMENG_CONFIG``, or ``kameng.toml`` here."""
    return Path(os.environ.get(CONFIG_ENV, "kameng.toml"))


def config_file() -> dict[str, Any]:
    """The configuration file's values (empty when there is none).

    Raises:
        ConfigError: ``KAMENG_CONFIG`` names a missing file, the file is not TOML, a key is
            unknown, or it holds a secret while others may read it.
    """
    path = config_path()
    if not path.is_file():
        if CONFIG_ENV in os.environ:
            raise ConfigError(f"{CONFIG_ENV}={path}: no such file")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(Settings.model_fields) - COMMAND_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; the keys are listed in docs/CONFIG.md "
            "(lower case, no KAMENG_ prefix)"
        )
    secrets = sorted(SECRET_KEYS & set(data))
    if secrets and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds secrets ({', '.join(secrets)}) but others may read it: "
            f"run `chmod 600 {path}`"
        )
    return data


def configured(key: str) -> Any:
    """A command option's value from the configuration file, or None (its environment
    variable, read by the command itself, comes first)."""
    return config_file().get(key)


class Settings(BaseSettings):
    """Everything the vault, the delivery agent and the API need to know.

    Attributes:
        environment: ``development`` allows the development secrets; anything else (the default
            is ``production``) refuses them.
        database_url: SQLAlchemy URL; a SQLite file under ``./var/`` by default.
        rpc_url: A JSON-RPC node; None means the embedded eth-tester chain.
        escrow_address: The CodeEscrow contract, when already deployed.
        master_key: Hex AES-256 key that wraps every per-record data key.
        fingerprint_key: Hex HMAC-SHA256 key for duplicate-detection fingerprints.
        session_key: Hex HMAC-SHA256 key of sign-in tokens; its own key, never derived from the
            master key, so that rotating one does not touch the other.
        delivery_key: Hex private key of the supplier's delivery account (not its owner key).
        max_upload_bytes: Size cap of one CSV upload.
        max_attestation_bytes: Size cap of one published attestation document.
        max_code_bytes: Longest code accepted (UTF-8 bytes); docs/PROTOCOL.md fixes 256.
        max_note_chars: Longest note accepted.
        max_codes_per_upload: Most codes in one upload (one batch on-chain).
        body_timeout_seconds: How long the API waits for the next piece of a request body before
            it answers 408 and closes the connection (a client that stops sending mid-body).
        commit_wait_seconds: How long an upload waits for its commitBatch to mine before it
            returns ``pending`` (finished later by `recover_pending`).
        delivery_batch_size: Most orders posted in one `deliver` transaction.
        delivery_poll_seconds: How long the agent idles between empty polls.
        retention_grace_seconds: How long after an order became final (completed, refunded or
            resolved, so every window has passed) its codes and evidence additions are kept
            before the delivery agent purges them (`backend.evidence.retention`).
        retention_sweep_seconds: How often the delivery agent looks for orders to purge.
        keeper: Run the keeper (`backend.keeper`: settles due orders, resolves timed-out
            disputes) in serve, where a keeper key is configured (or on a development chain).
        keeper_key: The keeper's private key: any account with gas money, no role.
        keeper_batch_size: Orders per settle transaction.
        keeper_poll_seconds: Pause between the keeper's passes.
        notify: Run the notification producer and dispatcher (`backend.notify`) in serve.
        notify_allow_private: Let webhooks point at private or loopback addresses (default:
            only in development).
        notify_confirmations: Blocks below the indexer's checkpoint an event must be before
            it is told.
        notify_retry_budget_seconds: How long a message is retried before it is dead-lettered.
        notify_backoff_base_seconds: The first pause after a failed delivery; it doubles...
        notify_backoff_max_seconds: ...up to this.
        smtp_host: The mail server for email notifications (unset: no email endpoints).
        smtp_port, smtp_sender, smtp_username, smtp_password, smtp_starttls: The rest of it.
        delivery_deadline_margin: Orders whose delivery deadline is closer than this (seconds)
            are not posted, because the transaction could mine after it and revert.
        delivery_bump_blocks: A delivery transaction still waiting in the node's pool after
            this many blocks is replaced by the same call at a higher gas price (same nonce).
        delivery_bump_percent: How much a replacement raises the gas price at least (nodes
            refuse replacements under +10%); the node's current price is used when higher.
        delivery_max_gas_price: The highest gas price (wei) a delivery transaction or its
            replacement may offer; None for no cap. Above it deliveries wait, with a warning.
        order_source: Where the agent learns of paid orders: the indexer's ``mirror``, the
            ``chain`` logs directly, or ``auto`` (the mirror when its tables exist).
        chain_start_block: First block the chain-log source scans (the escrow's deployment).
        chain_log_range: Blocks per ``eth_getLogs`` request of the chain-log source.
        reorg_depth: Blocks the chain-log source re-reads behind its cursor on every poll.
        rate_limit_scale: Multiplies every rate limit of the API (`backend.api.ratelimit`):
            2 allows twice the calls; tests that sign in hundreds of times use a large one.
    """

    model_config = SettingsConfigDict(
        env_prefix="KAMENG_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "staging", "production"] = "production"
    database_url: str = "sqlite:///./var/kameng.db"
    rpc_url: str | None = None
    escrow_address: str | None = None
    master_key: SecretStr = SecretStr(DEV_MASTER_KEY)
    fingerprint_key: SecretStr = SecretStr(DEV_FINGERPRINT_KEY)
    session_key: SecretStr = SecretStr(DEV_SESSION_KEY)
    delivery_key: SecretStr | None = None

    max_upload_bytes: int = 8 * 1024 * 1024
    max_attestation_bytes: int = Field(default=2 * 1024 * 1024, gt=0)
    max_code_bytes: int = 256
    max_note_chars: int = 500
    max_codes_per_upload: int = 50_000
    commit_wait_seconds: float = 60.0
    body_timeout_seconds: float = Field(default=30.0, gt=0)

    delivery_batch_size: int = 150
    delivery_poll_seconds: float = 0.05
    delivery_deadline_margin: int = 30
    delivery_bump_blocks: int = Field(default=3, ge=1)
    delivery_bump_percent: int = Field(default=25, ge=11, le=400)
    delivery_max_gas_price: int | None = Field(default=None, gt=0)
    order_source: Literal["auto", "mirror", "chain"] = "auto"
    chain_start_block: int = 0
    chain_log_range: int = 50
    reorg_depth: int = 12
    rate_limit_scale: float = Field(default=1.0, gt=0)
    retention_grace_seconds: int = Field(default=7 * 86_400, ge=0)
    retention_sweep_seconds: float = Field(default=300.0, gt=0)

    keeper: bool = True
    keeper_key: SecretStr | None = None
    keeper_batch_size: int = Field(default=50, ge=1, le=500)
    keeper_poll_seconds: float = Field(default=0.5, gt=0)

    notify: bool = True
    notify_allow_private: bool | None = None
    notify_confirmations: int = Field(default=0, ge=0)
    notify_retry_budget_seconds: float = Field(default=86_400.0, gt=0)
    notify_backoff_base_seconds: float = Field(default=5.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=3_600.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, gt=0, lt=65_536)
    smtp_sender: str = "kameng@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code, then the environment, then ``.env``, then the configuration file."""
        config_file()  # refuse an unknown key or a readable secret before anything is read
        path = config_path()
        sources: tuple[PydanticBaseSettingsSource, ...] = (
            init_settings,
            env_settings,
            dotenv_settings,
        )
        if path.is_file():
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return (*sources, file_secret_settings)

    @property
    def notify_private_ok(self) -> bool:
        """Whether webhooks may point at private and loopback addresses (development only,
        unless KAMENG_NOTIFY_ALLOW_PRIVATE says otherwise)."""
        if self.notify_allow_private is not None:
            return self.notify_allow_private
        return self.environment == "development"

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        """Refuse development secrets outside development, and malformed keys anywhere."""
        parse_key32(self.master_key.get_secret_value(), "KAMENG_MASTER_KEY")
        parse_key32(self.fingerprint_key.get_secret_value(), "KAMENG_FINGERPRINT_KEY")
        if self.delivery_key is not None:
            parse_key32(self.delivery_key.get_secret_value(), "KAMENG_DELIVERY_KEY")
        parse_key32(self.session_key.get_secret_value(), "KAMENG_SESSION_KEY")
        if self.environment != "development":
            problems = [
                f"{name} is missing (it holds the public development value, refused when "
                f"KAMENG_ENVIRONMENT={self.environment}): {why}; {MAKE_KEY}"
                for name, value, dev, why in (
                    (
                        "KAMENG_MASTER_KEY",
                        self.master_key,
                        DEV_MASTER_KEY,
                        "it encrypts the vault; keep it, the vault cannot be read without it",
                    ),
                    (
                        "KAMENG_FINGERPRINT_KEY",
                        self.fingerprint_key,
                        DEV_FINGERPRINT_KEY,
                        "it keys the duplicate-code fingerprints; keep it with the database",
                    ),
                    (
                        "KAMENG_SESSION_KEY",
                        self.session_key,
                        DEV_SESSION_KEY,
                        "it signs sign-in tokens; changing it signs everyone out",
                    ),
                )
                if value.get_secret_value().lower().removeprefix("0x") == dev[2:]
            ]
            if self.delivery_key is None:
                problems.append(
                    "KAMENG_DELIVERY_KEY is missing: the private key of the delivery account "
                    "your supplier named with setDeliveryKey (never the supplier's owner key)"
                )
            if not problems and self.session_key_bytes == self.master_key_bytes:
                problems.append(
                    "KAMENG_SESSION_KEY equals KAMENG_MASTER_KEY: use a separate key, so that a "
                    f"leaked session key does not open the vault; {MAKE_KEY}"
                )
            if problems:
                raise ConfigError(
                    f"refusing to start with KAMENG_ENVIRONMENT={self.environment} (the "
                    "default outside the embedded chain and --dev):\n  " + "\n  ".join(problems)
                )
        if self.max_code_bytes > 256:
            raise ConfigError("max_code_bytes cannot exceed 256 (docs/PROTOCOL.md)")
        return self

    @cached_property
    def master_key_bytes(self) -> bytes:
        """The master key as 32 raw bytes."""
        return parse_key32(self.master_key.get_secret_value(), "KAMENG_MASTER_KEY")

    @cached_property
    def session_key_bytes(self) -> bytes:
        """The session-token key as 32 raw bytes."""
        return parse_key32(self.session_key.get_secret_value(), "KAMENG_SESSION_KEY")

    @cached_property
    def fingerprint_key_bytes(self) -> bytes:
        """The fingerprint HMAC key as 32 raw bytes."""
        return parse_key32(self.fingerprint_key.get_secret_value(), "KAMENG_FINGERPRINT_KEY")

    def keeper_account(self) -> LocalAccount | None:
        """The keeper's account from `keeper_key`, or None."""
        from eth_account import Account

        if self.keeper_key is None:
            return None
        parse_key32(self.keeper_key.get_secret_value(), "KAMENG_KEEPER_KEY")
        account: LocalAccount = Account.from_key(self.keeper_key.get_secret_value())
        return account

    def delivery_account(self) -> LocalAccount:
        """The delivery account, from `delivery_key`.

        Raises:
            ConfigError: no delivery key is configured.
        """
        from eth_account import Account

        if self.delivery_key is None:
            raise ConfigError(
                "no delivery key: set KAMENG_DELIVERY_KEY to the private key of the account your "
                "supplier named with setDeliveryKey"
            )
        account: LocalAccount = Account.from_key(
            parse_key32(self.delivery_key.get_secret_value(), "KAMENG_DELIVERY_KEY")
        )
        return account
