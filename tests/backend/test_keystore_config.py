"""Issue 14: keystores, the deployment manifest and ``kameng.toml``, each with its bad input.

Every refusal names what to fix; none writes anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from backend.config import Settings
from backend.errors import ConfigError
from backend.keystore import KeystoreError, create, listing, open_keystore, password_from
from contracts.manifest import ManifestError, read_manifest

KEY = "0x" + "11" * 32


def test_a_keystore_is_private_and_opens_only_with_its_password(tmp_path: Path) -> None:
    made = create("ops", "long enough", private_key=KEY, base=tmp_path)
    assert made.address == Account.from_key(KEY).address
    assert made.path.stat().st_mode & 0o777 == 0o600
    assert made.path.parent.stat().st_mode & 0o777 == 0o700
    assert KEY[2:] not in made.path.read_text()
    assert [k.address for k in listing(tmp_path)] == [made.address]
    assert open_keystore("ops", "long enough", tmp_path).address == made.address
    assert open_keystore(str(made.path), "long enough").address == made.address
    with pytest.raises(KeystoreError, match="wrong password for keystore"):
        open_keystore("ops", "not the one", tmp_path)


@pytest.mark.parametrize(
    ("name", "password", "key", "message"),
    [
        ("../escape", "long enough", None, "bad keystore name"),
        ("ok", "short", None, "too short"),
        ("ok", "long enough", "0x1234", "not a private key"),
    ],
)
def test_bad_keystore_input_is_refused_and_writes_nothing(
    tmp_path: Path, name: str, password: str, key: str | None, message: str
) -> None:
    with pytest.raises(KeystoreError, match=message):
        create(name, password, private_key=key, base=tmp_path)
    assert listing(tmp_path) == []


def test_a_keystore_name_is_never_overwritten(tmp_path: Path) -> None:
    first = create("ops", "long enough", base=tmp_path)
    with pytest.raises(KeystoreError, match="exists already"):
        create("ops", "long enough", private_key=KEY, base=tmp_path)
    assert [k.address for k in listing(tmp_path)] == [first.address]


def test_missing_and_broken_keystores_say_so(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore 'nobody'"):
        open_keystore("nobody", "long enough", tmp_path)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(KeystoreError, match="not a keystore"):
        open_keystore(str(junk), "long enough")


def test_a_password_never_comes_from_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAMENG_KEYSTORE_PASSWORD", raising=False)
    with pytest.raises(KeystoreError, match="--password-file"):
        password_from(None)
    secret = tmp_path / "pw"
    secret.write_text("from a file\n")
    assert password_from(secret) == "from a file"
    monkeypatch.setenv("KAMENG_KEYSTORE_PASSWORD", "from the environment")
    assert password_from(None) == "from the environment"
    assert password_from(None, prompt=lambda _confirm: "typed") == "from the environment"


def test_a_manifest_with_a_bad_field_names_it(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("[]")
    with pytest.raises(ManifestError, match="not a kameng deployment manifest"):
        read_manifest(path)
    good = {
        "kameng_manifest": 1,
        "chain_id": 31337,
        "escrow": "0x" + "ab" * 20,
        "deploy_block": 3,
        "deployer": "0x" + "cd" * 20,
        "fee_recipient": "0x" + "cd" * 20,
        "roles": {"admin": "0x" + "cd" * 20, "arbiters": ["0x" + "ef" * 20]},
    }
    path.write_text(json.dumps(good))
    assert read_manifest(path).deploy_block == 3
    path.write_text(json.dumps({**good, "escrow": "0x12"}))
    with pytest.raises(ManifestError, match="'escrow' must be an address"):
        read_manifest(path)
    path.write_text(json.dumps({**good, "chain_id": "one"}))
    with pytest.raises(ManifestError, match="'chain_id' must be a whole number"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        read_manifest(tmp_path / "missing.json")


def test_kameng_toml_is_read_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kameng.toml"
    config.write_text('database_url = "sqlite:///from-file.db"\nkeeper_batch_size = 7\n')
    monkeypatch.setenv("KAMENG_CONFIG", str(config))
    monkeypatch.delenv("KAMENG_KEEPER_BATCH_SIZE", raising=False)
    monkeypatch.delenv("KAMENG_DATABASE_URL", raising=False)
    settings = Settings(environment="development")
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.keeper_batch_size == 7
    monkeypatch.setenv("KAMENG_KEEPER_BATCH_SIZE", "9")
    assert Settings(environment="development").keeper_batch_size == 9


def test_kameng_toml_refuses_unknown_keys_and_readable_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kameng.toml"
    monkeypatch.setenv("KAMENG_CONFIG", str(config))
    config.write_text('databse_url = "typo"\n')
    with pytest.raises(ConfigError, match="unknown key\\(s\\) databse_url"):
        Settings(environment="development")
    config.write_text(f'master_key = "{"22" * 32}"\n')
    config.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Settings(environment="development")
    config.chmod(0o600)
    assert Settings(environment="development").master_key_bytes == bytes.fromhex("22" * 32)
    config.write_text("not = [toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings(environment="development")
    monkeypatch.setenv("KAMENG_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        Settings(environment="development")


def test_every_setting_is_documented_in_docs_config() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md").read_text()
    missing = [n for n in Settings.model_fields if f"| `{n}` | `KAMENG_{n.upper()}` |" not in text]
    assert missing == [], f"add these settings to docs/CONFIG.md: {missing}"
