"""``GET /health`` tells the truth about the background workers (in-process mode): while the
indexer and the delivery agent run it says so; once one dies it answers 503 naming it."""

from __future__ import annotations

from typing import Any

import httpx

from backend.runtime import Runtime
from tests.backend.api_helpers import backend_settings, poll


class InjectedFault(RuntimeError):
    """The exception a worker is made to die of."""


def _die() -> Any:
    raise InjectedFault("injected by the test")


def _health(url: str) -> httpx.Response:
    return httpx.get(url + "/health", timeout=10)


def test_a_dead_worker_makes_health_answer_503_naming_it() -> None:
    runtime = Runtime.embedded(backend_settings(keeper=True), buyers=1)
    try:
        runtime.start()
        assert runtime.url is not None
        url = runtime.url
        answer = _health(url)
        ok = answer.json()
        assert answer.status_code == 200 and ok["status"] == "ok"
        assert ok["workers"] == {
            "indexer": "running",
            "agent": "running",
            "notify": "running",
            "notify-sender": "running",
            "keeper": "running",
        }
        assert ok["api_restarts"] is None  # one process: no supervisor restarts the API

        # The agent's next pass raises what it does not retry: its thread dies.
        runtime.agent.run_once = _die
        down = poll("a 503 naming the agent", lambda: _health(url).status_code == 503)
        assert down
        answer = _health(url)
        body = answer.json()
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert body["status"] == "degraded"
        assert body["workers"] == {
            "indexer": "running",
            "agent": "dead: InjectedFault",
            "notify": "running",
            "notify-sender": "running",
            "keeper": "running",
        }
        assert body["detail"] == "dead workers: agent (dead: InjectedFault)"
        # The fields a healthy answer has are still there.
        assert body["escrow"] == runtime.escrow.address and body["head_block"] >= 1
        assert "indexed_block" in body and "lag_blocks" in body

        # The indexer too: its next pass (after a new block) raises.
        runtime.indexer.run_once = _die
        runtime.chain.mine()

        def indexer_named() -> bool:
            return bool(_health(url).json()["workers"]["indexer"] == "dead: InjectedFault")

        poll("the indexer named dead", indexer_named)
        body = _health(url).json()
        assert body["detail"] == (
            "dead workers: agent (dead: InjectedFault), indexer (dead: InjectedFault)"
        )
        assert [type(e) for e in runtime.errors] == [InjectedFault, InjectedFault]
    finally:
        runtime.stop()
