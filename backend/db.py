"""Engines, sessions and migrations for the backend's database (the mirror's and ours).

Public API: `make_engine(url)`, `session_factory(engine)`, `migrate(url)`,
`bind_escrow(session, chain_id, escrow)`.
"""

from __future__ import annotations
