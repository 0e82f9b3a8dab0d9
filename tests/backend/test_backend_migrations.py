"""The backend's Alembic history creates every table the backend uses, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from backend.auth import auth_metadata
from backend.db import make_engine, migrate
from backend.evidence.store import Base as EvidenceBase
from backend.gateway import models as gateway_models
from backend.models import Base
from backend.notify import models as notify_models


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_creates_vault_auth_and_evidence_tables_matching_the_models(
    backend: str, tmp_path: Path, postgres_url: str
) -> None:
    # Their tables are on the backend's metadata, so the comparison below covers them.
    assert notify_models.Endpoint.__table__.metadata is Base.metadata
    assert gateway_models.ChainTx.__table__.metadata is Base.metadata
    url = f"sqlite:///{tmp_path}/m.db" if backend == "sqlite" else postgres_url
    migrate(url)
    migrate(url)  # a second run changes nothing
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        wanted = (
            set(Base.metadata.tables)
            | set(auth_metadata.tables)
            | set(EvidenceBase.metadata.tables)
        )
        assert wanted <= tables, wanted - tables
        for table in (
            *Base.metadata.tables.values(),
            *auth_metadata.tables.values(),
            *EvidenceBase.metadata.tables.values(),
        ):
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()
