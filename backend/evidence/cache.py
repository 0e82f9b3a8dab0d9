"""Bundles already built, kept while nothing they depend on can have changed.

A bundle is a function of the order, the block it is pinned to (by hash: a reorganised block
has another hash) and the parties' additions. `BundleCache` keeps the last few hundred under
that key, so repeating a request in the same block (a page that polls, a client that retries, or
someone hammering the endpoint) costs one database read and no chain reads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.evidence.bundle import Built
    from backend.evidence.derive import SupplierClaim

#: Bundles kept (each is at most a few hundred kilobytes).
MAX_BUNDLES = 256

BundleKey = tuple[int, str, str]


def additions_digest(secret: bytes | None, codes: list[SupplierClaim] | None) -> str:
    """A digest of the parties' additions (never stored: only compared)."""
    h = hashlib.sha256()
    h.update(b"\x01" + secret if secret is not None else b"\x00")
    for c in codes or ():
        h.update(c.index.to_bytes(8, "big") + c.salt + len(c.code).to_bytes(2, "big") + c.code)
    h.update(b"\x01" if codes is not None else b"\x00")
    return h.hexdigest()


class BundleCache:
    """A small thread-safe LRU of built bundles."""

    def __init__(self, size: int = MAX_BUNDLES) -> None:
        """Keep at most `size` bundles."""
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[BundleKey, Built] = OrderedDict()

    def get(self, key: BundleKey) -> Built | None:
        """The bundle built under `key`, if still kept."""
        with self._lock:
            built = self._items.get(key)
            if built is not None:
                self._items.move_to_end(key)
            return built

    def put(self, key: BundleKey, built: Built) -> None:
        """Keep `built` under `key`."""
        with self._lock:
            self._items[key] = built
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
