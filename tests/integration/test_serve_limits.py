"""One small hostile request must not take `kameng serve` down: 100,000 nested arrays (200 KB,
under every body cap) to the unauthenticated endpoints get a 422 that states the nesting limit,
and the same process answers `/health` after each. `kameng verify` on such a file says so and
exits 1, instead of dying in the JSON parser (exit 139) as it did while a dependency had raised
the recursion limit to 100,000."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from backend.limits import MAX_JSON_DEPTH
from contracts.chain import free_port
from tests.integration.serve_support import ROOT, kameng_serve

DEEP = "[" * 100_000 + "]" * 100_000
LIMIT = f"100000 levels deep; at most {MAX_JSON_DEPTH} levels are accepted"


def test_deeply_nested_json_is_refused_and_the_server_stays_up(tmp_path: Path) -> None:
    port = str(free_port())
    dev = tmp_path / "dev.json"
    with kameng_serve(["--port", port, "--dev-accounts", str(dev)], cwd=tmp_path) as (url, proc):
        sent = [
            ("/rpc", DEEP.encode(), "application/json"),
            ("/auth/verify", DEEP.encode(), "application/json"),
            ("/evidence/verify", json.dumps({"document": DEEP}).encode(), "application/json"),
        ]
        for path, body, kind in sent:
            answer = httpx.post(url + path, content=body, headers={"Content-Type": kind})
            assert answer.status_code == 422, (path, answer.status_code, answer.text[:200])
            assert LIMIT in answer.json()["detail"], (path, answer.text[:300])
            health = httpx.get(url + "/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert proc.poll() is None, f"kameng serve died on {path}"

        bundle = tmp_path / "deep-bundle.json"
        bundle.write_text(DEEP)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from backend.cli import main; main()",
                "verify",
                str(bundle),
                "--rpc-url",
                url + "/rpc",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = " ".join(done.stdout.split())
        assert done.returncode == 1, (done.returncode, done.stdout[-500:], done.stderr[-500:])
        assert "json" in out and LIMIT in out, out
        assert proc.poll() is None
