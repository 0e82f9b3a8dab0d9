"""`kameng serve` on anything but the embedded chain is production: it refuses to start without
real secrets, one line per missing secret, and ``--dev`` is only for a node on this machine
(issue 19, finding 1). The checks run before any node is contacted."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from backend.cli.app import app

ESCROW = "0x" + "12" * 20


@pytest.fixture(autouse=True)
def no_kameng_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAMENG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "300")


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    return result.exit_code, " ".join(result.output.split())


def test_a_real_node_without_secrets_is_refused_naming_each() -> None:
    code, out = serve("--rpc-url", "https://node.example", "--escrow", ESCROW)
    assert code != 0
    for name in ("MASTER", "FINGERPRINT", "SESSION", "DELIVERY"):
        assert f"KAMENG_{name}_KEY" in out, (name, out)
    assert "os.urandom(32).hex()" in out


def test_the_development_secrets_are_refused_even_when_set_explicitly() -> None:
    from backend.config import DEV_MASTER_KEY

    env = {
        "KAMENG_MASTER_KEY": DEV_MASTER_KEY,
        "KAMENG_FINGERPRINT_KEY": os.urandom(32).hex(),
        "KAMENG_SESSION_KEY": os.urandom(32).hex(),
        "KAMENG_DELIVERY_KEY": os.urandom(32).hex(),
    }
    code, out = serve("--rpc-url", "http://127.0.0.1:1", "--escrow", ESCROW, env=env)
    assert code != 0 and "KAMENG_MASTER_KEY is missing" in out
    assert "KAMENG_SESSION_KEY" not in out


def test_dev_is_refused_for_a_node_elsewhere_and_needed_for_a_dev_world() -> None:
    code, out = serve("--rpc-url", "https://node.example", "--escrow", ESCROW, "--dev")
    assert code == 2 and "--dev is for a development node on this machine" in out
    code, out = serve("--rpc-url", "http://127.0.0.1:1")
    assert code == 2 and "needs --dev" in out
