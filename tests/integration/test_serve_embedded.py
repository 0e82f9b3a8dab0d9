"""`kameng serve` with zero configuration: one process runs the embedded chain, the indexer,
the delivery agent and the API on SQLite; the CLI buys, fetches, verifies and confirms."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
from typer.testing import CliRunner

from backend.cli import app
from bench.world import demo_codes
from contracts.chain import free_port
from tests.backend.api_helpers import poll
from tests.integration.serve_support import kameng_serve

runner = CliRunner()


def test_zero_config_serve_runs_the_whole_flow(tmp_path: Path) -> None:
    dev = tmp_path / "dev.json"
    port = str(free_port())
    with kameng_serve(
        ["--port", port, "--dev-accounts", str(dev)], cwd=tmp_path, dev_stock=None
    ) as (url, proc):
        accounts = json.loads(dev.read_text())
        listing = str(accounts["listing_id"])
        env = {"KAMENG_DEV_ACCOUNTS": str(dev), "KAMENG_API_URL": url, "COLUMNS": "200"}
        health = httpx.get(url + "/health").json()
        assert health["status"] == "ok" and health["escrow"] == accounts["escrow"]
        # A first run's store has something to sell, and the console says how to stock more and
        # which development keys sign in as supplier and arbiter.
        poll(
            "the development stock on sale",
            lambda: httpx.get(f"{url}/catalog/listings/{listing}").json()["stock"] == 100,
        )
        log = tmp_path / f"serve-{port}.log"
        poll("the console's stock line", lambda: "stocked with 100 demo codes" in log.read_text())
        console = " ".join(log.read_text().split())
        assert "kameng supplier upload" in console
        for role in ("supplier", "arbiter"):
            assert f"dev {role} key: {accounts[role]['private_key']}" in console, role
        csv = tmp_path / "codes.csv"
        csv.write_bytes(b"\n".join(demo_codes(200)))
        result = runner.invoke(
            app, ["supplier", "upload", listing, str(csv), "--dev", "supplier"], env=env
        )
        assert result.exit_code == 0, result.output
        result = runner.invoke(
            app, ["buyer", "buy", listing, "-q", "3", "--dev", "buyer0"], env=env
        )
        out = " ".join(result.output.split())
        assert result.exit_code == 0 and "fetched and verified" in out, out
        order_id = out.split("order ", 1)[1].split(":", 1)[0]
        result = runner.invoke(app, ["buyer", "confirm", order_id, "--dev", "buyer0"], env=env)
        assert result.exit_code == 0 and "confirmed" in result.output, result.output

        def dashboard_shows_completion() -> bool:
            result = runner.invoke(app, ["supplier", "dashboard", "--dev", "supplier"], env=env)
            assert result.exit_code == 0, result.output
            return "completed 1" in " ".join(result.output.split())

        poll("the confirmation on the dashboard", dashboard_shows_completion)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    _no_plaintext_in_logs(tmp_path)


def _no_plaintext_in_logs(tmp: Path) -> None:
    logs = list(tmp.glob("serve-*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "KMG-" not in text, "a plaintext code reached the server's log"
