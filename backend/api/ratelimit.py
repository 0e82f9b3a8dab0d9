"""Rate limits for the calls that stay expensive: token buckets per wallet and per address.

    limiter = RateLimiter({"evidence": Limit(per_minute=30, burst=10)})
    limiter.check("evidence", f"wallet:{address}")   # raises RateLimited (429) when empty

A bucket holds `burst` tokens and refills at `per_minute` a minute; each call takes one. The
refusal says when the next token arrives, as ``Retry-After`` (whole seconds, at least 1). The
buckets live in the process: behind several API processes, each keeps its own, so the limit a
client sees is at most the number of processes times the configured one (docs/API.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from backend.api.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fastapi import Request

#: Most buckets kept per limit (least recently used are dropped first: a dropped bucket is full).
MAX_BUCKETS = 100_000


def client_address(request: Request) -> str:
    """The address of the connection's peer (behind a reverse proxy: the proxy's, unless uvicorn
    runs with ``--proxy-headers`` and trusts it)."""
    return request.client.host if request.client is not None else "unknown"


class RateLimited(ApiError):
    """Too many requests: answered 429 with ``Retry-After``."""

    status_code: ClassVar[int] = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    """A rate: `per_minute` calls a minute on average, at most `burst` at once."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a limit needs per_minute > 0 and burst >= 1")


class RateLimiter:
    """Token buckets by (limit name, key), thread-safe."""

    def __init__(
        self, limits: Mapping[str, Limit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Limits by name; `clock` gives seconds (tests pass their own)."""
        self.limits = dict(limits)
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, OrderedDict[str, tuple[float, float]]] = {
            name: OrderedDict() for name in self.limits
        }

    def check_client(self, name: str, request: Request, what: str = "requests") -> None:
        """`check` keyed by the client's address (the peer of the connection)."""
        self.check(name, client_address(request), what)

    def check(self, name: str, key: str, what: str = "requests") -> None:
        """Take a token from `key`'s bucket of limit `name`.

        Raises:
            RateLimited: the bucket is empty; the message says how long to wait.
        """
        limit = self.limits[name]
        rate = limit.per_minute / 60.0
        now = self.clock()
        with self._lock:
            buckets = self._buckets[name]
            tokens, at = buckets.pop(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                raise RateLimited(
                    f"too many {what}: at most {limit.per_minute:g} a minute "
                    f"({limit.burst} at once); retry in {wait} s",
                    retry_after=wait,
                )
            buckets[key] = (tokens - 1.0, now)
            while len(buckets) > MAX_BUCKETS:
                buckets.popitem(last=False)


#: The limits `kameng serve` applies (docs/API.md, "Limits").
DEFAULT_LIMITS: dict[str, Limit] = {
    # Building or adding to an evidence bundle: a signed-in wallet, and any one client address.
    "evidence-wallet": Limit(per_minute=30, burst=10),
    "evidence-address": Limit(per_minute=60, burst=20),
    # Signing in needs no sign-in: a nonce is a stored row, a verification a SIWE parse.
    "auth-address": Limit(per_minute=60, burst=20),
    # Verifying a bundle against the chain needs no sign-in: per client address only.
    "verify-address": Limit(per_minute=12, burst=4),
    # Publishing an attestation document needs no sign-in (it must hash to a cited attestation).
    "attestation-address": Limit(per_minute=12, burst=6),
}


def scaled(limits: Mapping[str, Limit], factor: float) -> dict[str, Limit]:
    """`limits` with every rate and burst multiplied by `factor` (bursts stay at least 1)."""
    return {
        name: Limit(per_minute=lim.per_minute * factor, burst=max(1, round(lim.burst * factor)))
        for name, lim in limits.items()
    }
