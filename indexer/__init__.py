"""kameng's indexer: mirrors every escrow event into SQL, resumable and safe across reorgs.

Public API (what the backend calls):

- `Indexer(chain_or_rpc_url, database_url, escrow_address, start_block=0, finality_depth=0)`
  with `run_once() -> int`, `run_forever(stop, poll_interval=None)`, `status()`, `close()`;
- `migrate(url_or_engine)` and `make_engine(url)` from `indexer.db`;
- the tables in `indexer.models`; errors under `IndexerError` in `indexer.errors`.
"""

from indexer.db import make_engine, migrate
from indexer.errors import DeepReorgError, IndexerError
from indexer.runner import Indexer, Progress

__all__ = ["DeepReorgError", "Indexer", "IndexerError", "Progress", "make_engine", "migrate"]
