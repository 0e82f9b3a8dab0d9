"""`kameng serve` runs the API in a child process: a SIGKILL of that child (what a segfault on
hostile input would do) takes down only the API. The supervisor, which keeps the embedded chain,
the indexer and the delivery agent, logs the crash and starts another API worker on the same
port, while orders paid just before the kill are delivered and indexed with no API running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from backend.cli import app
from backend.db import make_engine
from bench.world import demo_codes
from contracts.chain import free_port
from contracts.encoding import OrderState
from indexer.models import Delivery, Order
from tests.backend.api_helpers import poll
from tests.integration.serve_support import kameng_serve

runner = CliRunner()
#: The supervisor waits this long before restarting a crashed API worker: the window in which
#: the test watches the indexer and the agent work with no API process at all.
RESTART_DELAY_S = 8


def api_workers(supervisor_pid: int) -> list[int]:
    """The live API worker processes of a `kameng serve` supervisor (from /proc)."""
    found: list[int] = []
    for children in Path(f"/proc/{supervisor_pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # it exited meanwhile
                continue
            if b"backend.api_worker" in cmdline:  # a reaped-pending zombie has no cmdline
                found.append(int(pid))
    return found


def delivered_and_indexed(engine: Engine, order_ids: list[int]) -> bool:
    """Whether the mirror shows every order delivered, with its delivery row."""
    with Session(engine) as session:
        states = session.scalars(select(Order.state).where(Order.order_id.in_(order_ids))).all()
        deliveries = session.scalars(
            select(Delivery.order_id).where(Delivery.order_id.in_(order_ids))
        ).all()
    return (
        len(states) == len(order_ids)
        and len(deliveries) == len(order_ids)
        and all(state == OrderState.DELIVERED for state in states)
    )


def test_a_killed_api_worker_is_restarted_on_the_same_port_while_the_workers_go_on(
    tmp_path: Path,
) -> None:
    dev = tmp_path / "dev.json"
    db = tmp_path / "kameng.db"
    port = str(free_port())
    args = [
        "--port",
        port,
        "--dev-accounts",
        str(dev),
        "--database-url",
        f"sqlite:///{db}",
        "--api-restart-delay",
        str(RESTART_DELAY_S),
    ]
    with kameng_serve(args, cwd=tmp_path) as (url, proc):
        accounts = json.loads(dev.read_text())
        listing = str(accounts["listing_id"])
        env = {"KAMENG_DEV_ACCOUNTS": str(dev), "KAMENG_API_URL": url, "COLUMNS": "200"}
        health = httpx.get(url + "/health").json()
        assert health["workers"] == {
            "indexer": "running",
            "agent": "running",
            "notify": "running",
            "notify-sender": "running",
            "keeper": "running",
            "api": "running",
        }
        assert health["api_restarts"] == 0
        first = poll("the API worker", lambda: api_workers(proc.pid))
        assert len(first) == 1

        csv = tmp_path / "codes.csv"
        csv.write_bytes(b"\n".join(demo_codes(100)))
        result = runner.invoke(
            app, ["supplier", "upload", listing, str(csv), "--dev", "supplier"], env=env
        )
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["buyer", "buy", listing, "--dev", "buyer0"], env=env)
        assert result.exit_code == 0 and "fetched and verified" in result.output, result.output

        # Pay two orders through the API's /rpc, and kill the API worker as soon as they are
        # mined: their delivery and indexing are left to the supervisor's workers.
        paid = []
        for _ in range(2):
            result = runner.invoke(
                app, ["buyer", "buy", listing, "-q", "2", "--no-wait", "--dev", "buyer1"], env=env
            )
            assert result.exit_code == 0, result.output
            paid.append(int(" ".join(result.output.split()).split("order ", 1)[1].split(":")[0]))
        os.kill(first[0], signal.SIGKILL)

        # No API process runs now, yet the orders get delivered on-chain and indexed.
        poll("the API worker to die", lambda: not api_workers(proc.pid))
        mirror = make_engine(f"sqlite:///{db}")
        poll("the deliveries in the mirror", lambda: delivered_and_indexed(mirror, paid), 30)
        mirror.dispose()
        assert not api_workers(proc.pid), "the API came back before the check (machine too slow?)"
        try:
            httpx.get(url + "/health", timeout=0.5)
            raise AssertionError("an API answered while none should run")
        except httpx.TimeoutException:
            pass  # the port still accepts (the supervisor holds it) but nobody answers yet

        # The supervisor starts another API worker on the same port.
        def restarted() -> dict[str, object] | None:
            try:
                answer = httpx.get(url + "/health", timeout=5)
            except httpx.TransportError:
                return None
            body: dict[str, object] = answer.json()
            return body if answer.status_code == 200 and body.get("api_restarts") == 1 else None

        health = poll("the API on the same port again", restarted, 60)
        assert health["workers"] == {
            "indexer": "running",
            "agent": "running",
            "notify": "running",
            "notify-sender": "running",
            "keeper": "running",
            "api": "running",
        }
        assert health["lag_blocks"] == 0
        second = api_workers(proc.pid)
        assert len(second) == 1 and second != first
        assert proc.poll() is None

        # The buyer opens and checks the orders delivered while the API was down.
        for oid in paid:
            result = runner.invoke(app, ["buyer", "verify", str(oid), "--dev", "buyer1"], env=env)
            assert result.exit_code == 0 and "every code matches" in result.output, result.output

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not api_workers(proc.pid)

    log = (tmp_path / f"serve-{port}.log").read_text()
    assert f"API worker (pid {first[0]}) killed by signal SIGKILL" in log
    assert f"API worker restarted (pid {second[0]}, restart 1)" in log
    assert "the indexer and the delivery agent go on" in log
    assert "KMG-" not in log, "a plaintext code reached the server's log"
