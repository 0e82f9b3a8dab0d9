"""The delivery agent: every paid order gets its codes sealed, stored and its digest on-chain.

Public API (stable):

- `DeliveryAgent(settings, session_factory, escrow, delivery_account, *, source=None)`
  with `recover()`, `run_once() -> list[int]`, `run_forever(stop)` and `drain()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.client import EscrowClient


class DeliveryAgent:
    """Delivers paid orders; safe to kill at any point and restart."""

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session],
        escrow: EscrowClient,
        delivery_account: LocalAccount,
        *,
        source: object | None = None,
    ) -> None:
        """Bind the agent."""
        raise NotImplementedError

    def run_once(self) -> list[int]:
        """One pass: reconcile in-flight transactions, seal new paid orders, post a batch.

        Returns:
            The order ids whose sealed releases were stored in this pass (now fetchable).
        """
        raise NotImplementedError

    def run_forever(self, stop: threading.Event) -> None:
        """Run passes until `stop` is set, idling briefly when there is nothing to do."""
        raise NotImplementedError
