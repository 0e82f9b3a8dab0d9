"""Liveness of the background workers, as ``GET /health`` reports it.

A worker is ``"running"`` or ``"dead: <reason>"``. In one process (`Runtime.start`) the report
comes from the runtime's threads; under the `kameng serve` supervisor the API worker asks the
supervisor, which also counts how often it restarted the API worker (`backend.supervisor`).

A reason names what happened (an exception's type, an exit code or a signal), never an
exception's message: the report is public, and a message may quote a database row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The status of a live worker.
RUNNING = "running"


def dead(reason: str) -> str:
    """The status of a worker that has stopped, with why."""
    return f"dead: {reason}"


@dataclass(frozen=True)
class WorkerReport:
    """Every required worker's status, and the API worker's restarts under the supervisor.

    Attributes:
        workers: Status by worker name (``indexer``, ``agent``, ``api``...).
        api_restarts: How often the supervisor restarted the API worker; None in one process.
    """

    workers: dict[str, str] = field(default_factory=dict)
    api_restarts: int | None = None

    @property
    def dead(self) -> list[str]:
        """The names of the workers that are not running, sorted."""
        return sorted(name for name, status in self.workers.items() if status != RUNNING)

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON (what the supervisor's ``GET /workers`` answers)."""
        return {"workers": dict(self.workers), "api_restarts": self.api_restarts}

    @classmethod
    def from_json(cls, data: Any) -> WorkerReport:
        """Read `as_json`'s output back.

        Raises:
            ValueError: `data` is not such a report.
        """
        if not isinstance(data, dict) or not isinstance(data.get("workers"), dict):
            raise ValueError("not a worker report")
        workers = {str(k): str(v) for k, v in data["workers"].items()}
        restarts = data.get("api_restarts")
        if restarts is not None and not isinstance(restarts, int):
            raise ValueError("api_restarts must be an integer")
        return cls(workers=workers, api_restarts=restarts)
