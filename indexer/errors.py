"""The indexer's errors: one root, `IndexerError`, under kameng's `KamengError`.

Each message says what went wrong and what to do about it.
"""

from __future__ import annotations

from contracts.errors import KamengError


class IndexerError(KamengError):
    """Root of every error the indexer raises on purpose."""


class RpcError(IndexerError):
    """The node answered a request with an error the indexer does not know how to get around."""


class TransientRpcError(RpcError):
    """A fault worth retrying: a timeout, a dropped connection, HTTP 429 or 5xx, a node lagging.

    Attributes:
        retry_after: Seconds the node asked us to wait (HTTP ``Retry-After``), when it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RangeTooLargeError(RpcError):
    """The node refused an `eth_getLogs` range as too large (too many results, response size).

    Attributes:
        suggested_to: The last block of the range the node suggested, when it named one.
    """

    def __init__(self, message: str, suggested_to: int | None = None) -> None:
        super().__init__(message)
        self.suggested_to = suggested_to


class ChainMovedError(IndexerError):
    """The chain changed while a range was being fetched (its blocks no longer link up)."""


class DeepReorgError(IndexerError):
    """A reorganisation reached below the finality depth: the mirror cannot undo it safely."""

    def __init__(
        self, *, block: int, stored_hash: str, chain_hash: str | None, finality_depth: int
    ) -> None:
        now = chain_hash if chain_hash is not None else "no block at that height"
        super().__init__(
            f"reorg deeper than the finality depth ({finality_depth}): block {block}, which the "
            f"mirror treats as final ({stored_hash}), is no longer canonical (now {now}). "
            "The mirror was left as it was. Raise --finality-depth and re-index into an empty "
            "database (or restore one taken before the fork)."
        )
        self.block = block
        self.stored_hash = stored_hash
        self.chain_hash = chain_hash


class WrongDatabaseError(IndexerError):
    """The database already mirrors another escrow or chain."""


class LostWriterError(IndexerError):
    """Another indexer moved the checkpoint under this one: it is no longer the writer."""
