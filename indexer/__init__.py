"""kameng's indexer: mirrors every escrow event into SQL, resumable and safe across reorgs."""
