"""Issue 14, more than one machine: two API replicas and two workers on PostgreSQL and anvil.

`kameng serve --only api` twice and `kameng serve --only worker` twice, sharing one database.
Orders stream in; the active worker is SIGKILLed mid-stream. The standby takes over every
singleton role (indexer, delivery agent, notifications; keeper), and:

- every order is delivered exactly once (one ``OrderDelivered`` log per order on-chain) and its
  release is served by both replicas;
- every API request made meanwhile either succeeded or got a retryable answer (503 with
  ``Retry-After``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from backend.client import KamengClient
from backend.keys import next_order_key, public_key_bytes
from bench.world import World, demo_codes, make_world
from contracts.chain import AnvilNode, Chain, free_port
from tests.backend.api_helpers import poll
from tests.integration.serve_support import ROOT, kameng_serve

pytestmark = [pytest.mark.anvil, pytest.mark.postgres]
ORDERS = 24
KILL_AFTER = 8


@contextmanager
def worker(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`kameng serve --only worker ARGS`, started and stopped (if still alive)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from backend.cli import main; main()",
                "serve",
                "--only",
                "worker",
                *args,
            ],  # fmt: skip
            cwd=log.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            poll(
                f"worker {log.name} up",
                lambda: proc.poll() is not None or b"kameng worker:" in log.read_bytes(),
                timeout=60,
            )
            assert proc.poll() is None, log.read_text()
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _env(world: World) -> dict[str, str]:
    return {
        "KAMENG_ENVIRONMENT": "test",
        "KAMENG_MASTER_KEY": "11" * 32,
        "KAMENG_FINGERPRINT_KEY": "22" * 32,
        "KAMENG_SESSION_KEY": "33" * 32,
        "KAMENG_DELIVERY_KEY": "0x" + bytes(world.delivery_key.key).hex(),
        "KAMENG_KEEPER": "false",
        "KAMENG_NOTIFY": "false",
        "KAMENG_RATE_LIMIT_SCALE": "1000",
    }


class Requests:
    """Every status the replicas answered while the worker died, by kind."""

    def __init__(self) -> None:
        self.ok = 0
        self.retryable = 0
        self.bad: list[str] = []

    def get(self, url: str, **kwargs: object) -> httpx.Response | None:
        try:
            response = httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            self.bad.append(f"{url}: {type(exc).__name__}")
            return None
        if response.status_code == 503 and int(response.headers.get("Retry-After", "0")) > 0:
            self.retryable += 1
        elif response.is_success or response.status_code == 404:
            self.ok += 1  # 404: a release not delivered yet, as the API documents
        else:
            self.bad.append(f"{url}: {response.status_code} {response.text[:200]}")
        return response


def test_two_replicas_and_two_workers_survive_the_active_worker_killed(
    postgres_url: str, tmp_path: Path
) -> None:
    anvil = AnvilNode()
    chain: Chain = anvil.start()
    try:
        world = make_world(chain, buyers=3)
        listing, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
        world.escrow.deposit_bond(world.supplier, 10**18)
        key_file = tmp_path / "supplier.key"
        key_file.write_text("0x" + bytes(world.supplier.key).hex())
        env = _env(world)
        common = ["--rpc-url", anvil.url, "--database-url", postgres_url,
                  "--escrow", world.escrow.address]  # fmt: skip
        with ExitStack() as stack:
            first = stack.enter_context(worker(common, env, tmp_path / "worker-a.log"))
            api_args = [*common, "--only", "api", "--supplier-key-file", str(key_file)]
            url_a, _ = stack.enter_context(
                kameng_serve(["--port", str(free_port()), *api_args], env=env, cwd=tmp_path)
            )
            url_b, _ = stack.enter_context(
                kameng_serve(["--port", str(free_port()), *api_args], env=env, cwd=tmp_path)
            )
            second = stack.enter_context(worker(common, env, tmp_path / "worker-b.log"))
            supplier = KamengClient(url_a)
            supplier.sign_in(world.supplier)
            uploaded = supplier.upload_codes(listing, b"\n".join(demo_codes(ORDERS + 4)))
            assert uploaded.state == "committed"

            requests = Requests()
            tokens: dict[tuple[str, str], str] = {}
            for url in (url_a, url_b):
                for buyer in world.buyers:
                    client = KamengClient(url)
                    client.sign_in(buyer)
                    assert client.token is not None
                    tokens[url, buyer.address] = client.token
            orders: list[tuple[int, LocalAccount]] = []
            for i in range(ORDERS):
                buyer = world.buyers[i % len(world.buyers)]
                key, _ = next_order_key(world.escrow, buyer)
                world.escrow.tx.reset_nonce(buyer.address)
                oid, _, _ = world.escrow.buy(
                    buyer, listing, 1, max_unit_price=10**15, buyer_pubkey=public_key_bytes(key)
                )
                orders.append((oid, buyer))
                for url in (url_a, url_b):
                    requests.get(f"{url}/catalog/listings/{listing}")
                if i == KILL_AFTER:
                    first.send_signal(signal.SIGKILL)  # the active worker, mid-stream
                    first.wait()
            assert second.poll() is None

            def all_delivered() -> bool:
                for oid, buyer in orders:
                    for url in (url_a, url_b):
                        r = requests.get(
                            f"{url}/buyer/orders/{oid}/release",
                            headers={"Authorization": f"Bearer {tokens[url, buyer.address]}"},
                        )
                        if r is None or r.status_code != 200:
                            return False
                return True

            poll("every order delivered after the takeover", all_delivered, timeout=90)
            assert requests.bad == [], requests.bad[:10]
            assert requests.ok > 0
        topic = "0x" + world.escrow.codec.topic("OrderDelivered").hex()
        logs = chain.make_request(
            "eth_getLogs",
            [
                {
                    "address": world.escrow.address,
                    "fromBlock": "0x0",
                    "toBlock": "latest",
                    "topics": [topic],
                }
            ],  # fmt: skip
        )
        delivered = [int(log["topics"][1], 16) for log in logs]
        assert sorted(delivered) == sorted(oid for oid, _ in orders)  # each exactly once
        # The second worker stood by while the first was alive, then took over.
        b_log = (tmp_path / "worker-b.log").read_text()
        standby = b_log.find("another delivery is active on this database: standing by")
        assert 0 <= standby < b_log.find("delivery: active (term 1)"), b_log[-3000:]
    finally:
        anvil.stop()
