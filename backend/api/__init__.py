"""kameng's HTTP API (FastAPI): `create_app` builds it; `routes/` holds one router per resource."""

from backend.api.main import create_app

__all__ = ["create_app"]
