"""Helpers of the backend engine's tests: settings with fresh secrets, a stocked listing."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.vault.service import UploadResult, upload_codes
from bench.world import World, demo_codes


def engine_settings(**overrides: object) -> Settings:
    """Settings with fresh random secrets, outside development, reading paid orders from logs."""
    values: dict[str, object] = {
        "environment": "test",
        "master_key": os.urandom(32).hex(),
        "fingerprint_key": os.urandom(32).hex(),
        "session_key": os.urandom(32).hex(),
        "delivery_key": os.urandom(32).hex(),
        "order_source": "chain",
        "database_url": "sqlite://",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Stocked:
    """A world with one listing whose codes are in the vault and committed on-chain."""

    world: World
    listing_id: int
    codes: list[bytes]
    upload: UploadResult


def stock_listing(
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    count: int = 20,
    start: int = 0,
    delivery_window: int = 3600,
) -> Stocked:
    """Open a bonded listing and upload `count` demo codes through the vault."""
    escrow = world.escrow
    listing_id, _ = escrow.create_listing(
        world.supplier, sku=world.sku, unit_price=10**15, delivery_window=delivery_window
    )
    escrow.deposit_bond(world.supplier, 10**18)
    codes = demo_codes(count, start)
    with sessions() as session:
        upload = upload_codes(
            session, escrow, world.supplier, listing_id, b"\n".join(codes), settings
        )
    assert upload.state == "committed"
    return Stocked(world, listing_id, codes, upload)
