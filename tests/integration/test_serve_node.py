"""`kameng serve` on a real node (anvil) and a real database (SQLite, PostgreSQL), with the
node and the database taken down for real (a TCP proxy in front of each is cut): the API
answers 503 with a retry hint, writes nothing half-way, and recovers when they come back."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.client import ApiError, KamengClient
from backend.keys import next_order_key, public_key_bytes
from backend.release import verify_release_onchain
from bench.world import World, demo_codes, make_world
from contracts.chain import AnvilNode, Chain, free_port
from tests.backend.api_helpers import poll
from tests.integration.serve_support import kameng_serve, node_serve_args, node_serve_env
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anvil
runner = CliRunner()


def _setup(chain: Chain) -> tuple[World, int]:
    world = make_world(chain, buyers=2)
    listing, _ = world.escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**15)
    world.escrow.deposit_bond(world.supplier, 10**18)
    return world, listing


def _buy_and_verify(world: World, listing: int, api: KamengClient, buyer_index: int) -> None:
    buyer = world.buyers[buyer_index]
    key, _ = next_order_key(world.escrow, buyer)
    world.escrow.tx.reset_nonce(buyer.address)
    oid, _, res = world.escrow.buy(
        buyer, listing, 2, max_unit_price=10**15, buyer_pubkey=public_key_bytes(key)
    )
    release = api.wait_release(oid, buyer, timeout=30)

    def verified() -> object:
        try:
            return verify_release_onchain(release, key, world.escrow, res.block_number)
        except Exception:  # not delivered on-chain yet
            return None

    assert len(poll("the delivery on-chain", verified).codes) == 2  # type: ignore[attr-defined]


def _vault_and_chain(api: KamengClient, world: World, listing: int) -> tuple[int, int]:
    row = next(r for r in api.dashboard().listings if r.listing_id == listing)
    return int(row.vault_codes or 0), int(world.escrow.call("getListing", listing)[1])


def _expect_503(call: object, what: str) -> ApiError:
    with pytest.raises(ApiError) as err:
        call()  # type: ignore[operator]
    assert err.value.status == 503, err.value
    assert err.value.retry_after and err.value.retry_after > 0
    assert what in err.value.detail, err.value.detail
    return err.value


def _rpc_down_and_back(
    rpc: TcpProxy, url: str, api: KamengClient, world: World, listing: int
) -> None:
    before = _vault_and_chain(api, world, listing)
    rpc.stop()
    response = httpx.get(url + "/health")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert "RPC node" in response.json()["detail"]
    _expect_503(lambda: api.upload_codes(listing, b"\n".join(demo_codes(5, 9_000))), "RPC node")
    assert api.listings()  # the catalog reads the mirror and keeps answering
    rpc.start()
    poll("the node to answer again", lambda: httpx.get(url + "/health").status_code == 200)
    assert _vault_and_chain(api, world, listing) == before
    _buy_and_verify(world, listing, api, 1)


def test_serve_on_anvil_and_sqlite_survives_the_node_going_down(
    node: tuple[AnvilNode, Chain], tmp_path: Path
) -> None:
    anvil, chain = node
    world, listing = _setup(chain)
    rpc = TcpProxy("127.0.0.1", anvil.port).start()
    db = f"sqlite:///{tmp_path}/kameng.db"
    try:
        with kameng_serve(
            node_serve_args(world, f"http://127.0.0.1:{rpc.port}", db, tmp_path),
            env=node_serve_env(world),
            cwd=tmp_path,
        ) as (url, _):
            api = KamengClient(url)
            api.sign_in(world.supplier)
            assert api.upload_codes(listing, b"\n".join(demo_codes(50))).state == "committed"
            _buy_and_verify(world, listing, api, 0)
            _rpc_down_and_back(rpc, url, api, world, listing)
        _no_plaintext_in_logs(tmp_path)
    finally:
        rpc.stop()


def test_serve_on_a_dev_node_deploys_a_dev_world(
    node: tuple[AnvilNode, Chain], tmp_path: Path
) -> None:
    anvil, _ = node
    dev = tmp_path / "dev.json"
    args = ["--port", str(free_port()), "--rpc-url", anvil.url, "--dev", "--dev-accounts", str(dev)]
    with kameng_serve(args, cwd=tmp_path) as (url, _):
        accounts = json.loads(dev.read_text())
        assert httpx.get(url + "/chain").json()["rpc_url"] == anvil.url
        env = {"KAMENG_DEV_ACCOUNTS": str(dev), "KAMENG_API_URL": url, "COLUMNS": "200"}
        csv = tmp_path / "codes.csv"
        csv.write_bytes(b"\n".join(demo_codes(20)))
        listing = str(accounts["listing_id"])
        result = runner.invoke(
            app, ["supplier", "upload", listing, str(csv), "--dev", "supplier"], env=env
        )
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["buyer", "buy", listing, "--dev", "buyer1"], env=env)
        assert result.exit_code == 0 and "verified" in result.output, result.output
    _no_plaintext_in_logs(tmp_path)


@pytest.mark.postgres
def test_serve_on_anvil_and_postgres_survives_the_database_and_node_going_down(
    node: tuple[AnvilNode, Chain], postgres_url: str, tmp_path: Path
) -> None:
    anvil, chain = node
    world, listing = _setup(chain)
    rpc = TcpProxy("127.0.0.1", anvil.port).start()
    parts = urlsplit(postgres_url)
    pg = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    netloc = f"{parts.username}@127.0.0.1:{pg.port}" if parts.username else f"127.0.0.1:{pg.port}"
    db = urlunsplit(parts._replace(netloc=netloc))
    try:
        with kameng_serve(
            node_serve_args(world, f"http://127.0.0.1:{rpc.port}", db, tmp_path),
            env=node_serve_env(world),
            cwd=tmp_path,
        ) as (url, _):
            api = KamengClient(url)
            api.sign_in(world.supplier)
            assert api.upload_codes(listing, b"\n".join(demo_codes(50))).state == "committed"
            _buy_and_verify(world, listing, api, 0)
            before = _vault_and_chain(api, world, listing)

            pg.stop()
            response = httpx.get(url + "/catalog/listings")
            assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
            assert "database" in response.json()["detail"]
            _expect_503(api.dashboard, "database")
            _expect_503(
                lambda: api.upload_codes(listing, b"\n".join(demo_codes(5, 8_000))), "database"
            )
            assert httpx.get(url + "/health").status_code == 503
            pg.start()
            poll(
                "the database to answer again",
                lambda: httpx.get(url + "/catalog/listings").status_code == 200,
            )
            assert _vault_and_chain(api, world, listing) == before
            _buy_and_verify(world, listing, api, 1)

            _rpc_down_and_back(rpc, url, api, world, listing)
        _no_plaintext_in_logs(tmp_path)
    finally:
        rpc.stop()
        pg.stop()


def _no_plaintext_in_logs(tmp: Path) -> None:
    logs = list(tmp.glob("serve-*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "KMG-" not in text, "a plaintext code reached the server's log"
