"""Issue 14: an operator opens a marketplace on a node with `kameng` commands only.

On anvil, from the CLI as an operator would: keystores (`kameng keys`), `kameng deploy` with a
separate account per role and a manifest, a licence granted by the rights admin with its
attestation document (`kameng admin`), `kameng serve` in production mode reading the manifest
(no escrow address typed, no supplier key on the server), a supplier onboarded with its
keystore (its own wallet commits its codes' batch), an order bought and then
settled by the keeper with nobody clicking. Bad input on the way gets one clear line and changes
nothing: a wrong password, the admin acting without the rights-admin role, a manifest of
another chain, a node that is down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_utils import keccak
from typer.testing import CliRunner, Result

from backend.cli import app
from backend.client import KamengClient
from bench.world import demo_codes
from contracts.chain import AnvilNode, Chain, free_port
from contracts.client import EscrowClient, EscrowConfig, deploy_contract
from contracts.encoding import OrderState, sku_id
from tests.backend.api_helpers import poll
from tests.integration.serve_support import kameng_serve

pytestmark = pytest.mark.anvil
runner = CliRunner()
PASSWORD = "operator-test-password"
SKU = "腾讯视频VIP月卡"


def kameng(env: dict[str, str], *args: str) -> Result:
    """Run one `kameng` command in this process with `env` on top of the environment."""
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **env})


def fast_keystore(folder: Path, name: str, account: object) -> None:
    """A keystore as `kameng keys import` writes it, with a cheap scrypt so the test is quick
    (the cost is stored in the file; `kameng keys` itself uses eth-account's default)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = Account.encrypt(account.key, PASSWORD, iterations=2**10)  # type: ignore[attr-defined]
    (folder / f"{name}.json").write_text(json.dumps(data))
    (folder / f"{name}.json").chmod(0o600)


def test_an_operator_opens_a_marketplace_with_kameng_commands(
    node: tuple[AnvilNode, Chain], tmp_path: Path
) -> None:
    anvil, chain = node
    rpc = anvil.url
    admin, rights, arbiter, pauser = (chain.new_account(ether=100) for _ in range(4))
    supplier, delivery, keeper, buyer = (chain.new_account(ether=100) for _ in range(4))
    data = tmp_path / "data"
    env = {"KAMENG_DATA_DIR": str(data), "KAMENG_KEYSTORE_PASSWORD": PASSWORD}

    # Keystores: the admin's through the real command, the others as it writes them.
    admin_key = tmp_path / "admin.key"
    admin_key.write_text("0x" + bytes(admin.key).hex())
    made = kameng(env, "keys", "import", "admin", "--key-file", str(admin_key))
    assert made.exit_code == 0, made.output
    keystores = data / "keystores"
    assert (keystores / "admin.json").stat().st_mode & 0o777 == 0o600
    assert keystores.stat().st_mode & 0o777 == 0o700
    assert admin.key.hex() not in (keystores / "admin.json").read_text()
    for name, account in (("rights", rights), ("supplier", supplier), ("buyer", buyer)):
        fast_keystore(keystores, name, account)
    listed = kameng(env, "keys", "list")
    assert all(a.address in listed.output for a in (admin, rights, supplier, buyer))

    # Deploy: a wrong password changes nothing; then each role to its own account.
    wrong = kameng({**env, "KAMENG_KEYSTORE_PASSWORD": "not-the-password"}, "deploy",
                   "--rpc-url", rpc, "--keystore", "admin")  # fmt: skip
    assert wrong.exit_code == 2 and "wrong password for keystore" in wrong.output
    assert chain.w3.eth.get_transaction_count(admin.address) == 0
    down = kameng(env, "deploy", "--rpc-url", f"http://127.0.0.1:{free_port()}",
                  "--keystore", "admin")  # fmt: skip
    assert down.exit_code == 2 and "no node answers" in down.output
    manifest = tmp_path / "manifest.json"
    deployed = kameng(env, "deploy", "--rpc-url", rpc, "--keystore", "admin",
                      "--rights-admin", rights.address, "--arbiter", arbiter.address,
                      "--pauser", pauser.address, "--manifest", str(manifest))  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    assert "one key holds every role" not in deployed.output
    record = json.loads(manifest.read_text())
    escrow = EscrowClient(chain, record["escrow"])
    assert record["chain_id"] == chain.chain_id
    assert record["roles"]["arbiters"] == [arbiter.address]
    assert escrow.has_role("RIGHTS_ADMIN_ROLE", rights.address)
    assert not escrow.has_role("RIGHTS_ADMIN_ROLE", admin.address)
    assert escrow.has_role("ARBITER_ROLE", arbiter.address)
    assert not escrow.has_role("ARBITER_ROLE", admin.address)
    assert escrow.has_role("PAUSER_ROLE", pauser.address)
    assert escrow.has_role("DEFAULT_ADMIN_ROLE", admin.address)
    code = bytes(chain.w3.eth.get_code(escrow.address))
    assert "0x" + keccak(code).hex() == record["artifact"]["runtime_code_keccak"]

    # A licence: the admin lacks the rights-admin role (one line, nothing sent); the rights
    # admin grants it, citing the document, which is kept.
    ops = {**env, "KAMENG_RPC_URL": rpc, "KAMENG_MANIFEST": str(manifest)}
    document = tmp_path / "licence.pdf"
    document.write_bytes(b"%PDF-1.4 distribution agreement, Tencent Video VIP, 2026-2027")
    nonce = chain.w3.eth.get_transaction_count(admin.address)
    refused = kameng(ops, "admin", "--keystore", "admin", "licence", "grant", supplier.address,
                     SKU, "--attestation", str(document))  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert (
        "does not hold RIGHTS_ADMIN_ROLE" in refused.output and "nothing was sent" in refused.output
    )
    assert chain.w3.eth.get_transaction_count(admin.address) == nonce
    # An address never used on this chain is most often a typo: refused, nothing sent.
    typo = Account.create().address
    rights_nonce = chain.w3.eth.get_transaction_count(rights.address)
    unknown = kameng(ops, "admin", "--keystore", "rights", "licence", "grant", typo, SKU,
                     "--attestation", str(document))  # fmt: skip
    assert unknown.exit_code == 2 and f"unknown supplier {typo}" in unknown.output, unknown.output
    assert chain.w3.eth.get_transaction_count(rights.address) == rights_nonce
    granted = kameng(ops, "admin", "--keystore", "rights", "licence", "grant", supplier.address,
                     SKU, "--attestation", str(document))  # fmt: skip
    assert granted.exit_code == 0, granted.output
    attestation = keccak(document.read_bytes())
    assert bytes(escrow.call("authorization", supplier.address, sku_id(SKU))) == attestation
    assert (
        data / "attestations" / f"0x{attestation.hex()}.pdf"
    ).read_bytes() == document.read_bytes()

    # A manifest of another chain is refused before anything starts.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**record, "chain_id": record["chain_id"] + 1}))
    wrong_chain = kameng(ops, "index", "--manifest", str(other), "--database-url",
                         f"sqlite:///{tmp_path / 'x.db'}", "--once")  # fmt: skip
    assert wrong_chain.exit_code == 2 and "the manifest is for chain" in wrong_chain.output
    assert not (tmp_path / "x.db").exists()

    # Serve in production mode, finding the escrow through the manifest alone, holding no
    # supplier's key: the supplier's own keystore signs its commitBatch.
    serve_env = {
        **ops,
        "KAMENG_ENVIRONMENT": "production",
        "KAMENG_MASTER_KEY": os.urandom(32).hex(),
        "KAMENG_FINGERPRINT_KEY": os.urandom(32).hex(),
        "KAMENG_SESSION_KEY": os.urandom(32).hex(),
        "KAMENG_DELIVERY_KEY": "0x" + bytes(delivery.key).hex(),
        "KAMENG_KEEPER_KEY": "0x" + bytes(keeper.key).hex(),
        "KAMENG_KEEPER_POLL_SECONDS": "0.2",
    }
    args = ["--port", str(free_port()), "--database-url", f"sqlite:///{tmp_path / 'k.db'}",
            "--single-process"]  # fmt: skip
    with kameng_serve(args, env=serve_env, cwd=tmp_path) as (url, _proc):
        api = KamengClient(url)
        assert api.chain_info().escrow == escrow.address
        sup = {**ops, "KAMENG_API_URL": url, "KAMENG_KEYSTORE": "supplier"}
        for step in (
            ("supplier", "delivery-key", delivery.address),
            ("supplier", "bond", "deposit", str(10**18)),
        ):
            done = kameng(sup, *step)
            assert done.exit_code == 0, (step, done.output)
        opened = kameng(sup, "supplier", "listing", "--sku", SKU, "--price", str(10**15),
                        "--dispute-window", "3600")  # fmt: skip
        assert opened.exit_code == 0, opened.output
        listing_id = int(escrow.call("listingCount"))
        assert escrow.listing(listing_id)["supplier"] == supplier.address
        csv = tmp_path / "codes.csv"
        csv.write_bytes(b"code\n" + b"\n".join(demo_codes(5)))
        uploaded = kameng(sup, "supplier", "upload", str(listing_id), str(csv))
        assert uploaded.exit_code == 0, uploaded.output
        said = " ".join(uploaded.output.split())  # however the terminal wrapped it
        assert "your key stays here" in said and "(committed)" in said, said
        poll("the stock on sale", lambda: api.listing(listing_id).stock == 5)

        bought = kameng({**ops, "KAMENG_API_URL": url, "KAMENG_KEYSTORE": "buyer"},
                        "buyer", "buy", str(listing_id), "--timeout", "60")  # fmt: skip
        assert bought.exit_code == 0, bought.output
        client = KamengClient(url)
        client.sign_in(buyer)
        (mine,) = client.my_orders()
        poll("delivered", lambda: client.order(mine.order_id, buyer).state == OrderState.DELIVERED)
        deadline = int(client.order(mine.order_id, buyer).deadline)
        chain.travel_to(deadline + 1)
        poll(
            "settled by the keeper, nobody clicking",
            lambda: client.order(mine.order_id, buyer).state == OrderState.COMPLETED,
            timeout=60,
        )
        settled = client.order(mine.order_id, buyer)
        assert any(e.name == "OrderSettled" for e in settled.events)
        assert escrow.balance_of(supplier.address) > 0

        # The licence's document, published to the server for the store; a different file is
        # refused before anything is sent.
        pub = {**ops, "KAMENG_API_URL": url}
        forged = tmp_path / "forged.pdf"
        forged.write_bytes(b"%PDF-1.4 not the agreement")
        wrong_doc = kameng(pub, "admin", "licence", "publish", supplier.address, SKU,
                           "--attestation", str(forged))  # fmt: skip
        assert wrong_doc.exit_code == 2 and "pass the very document" in wrong_doc.output
        published = kameng(pub, "admin", "licence", "publish", supplier.address, SKU,
                           "--attestation", str(document))  # fmt: skip
        assert published.exit_code == 0, published.output
        kept = httpx.get(f"{url}/attestations/0x{attestation.hex()}")
        assert kept.status_code == 200 and kept.content == document.read_bytes()
        assert kept.headers["content-type"] == "application/pdf"

        # The platform's settings: a fee over the contract's bound is refused with the bound
        # named and changes nothing; windows and fees within it are set.
        adm = {**ops, "KAMENG_KEYSTORE": "admin"}
        before = escrow.call("config")
        too_high = kameng(adm, "admin", "fees", "set", "--fee-bps", "6000")
        assert too_high.exit_code == 1 and "EscrowBadBps" in too_high.output, too_high.output
        assert escrow.call("config") == before
        changed = kameng(adm, "admin", "fees", "set", "--fee-bps", "250",
                         "--min-dispute-window", "7200",
                         "--max-delivery-window", "86400")  # fmt: skip
        assert changed.exit_code == 0, changed.output
        config = EscrowConfig(*escrow.call("config"))
        assert (config.fee_bps, config.min_dispute_window, config.max_delivery_window) == (
            250, 7200, 86400,
        )  # fmt: skip
        kept_as_was = EscrowConfig(*before)  # what was not given
        assert (config.min_bond_bps, config.arbitration_window) == (
            kept_as_was.min_bond_bps, kept_as_was.arbitration_window,
        )  # fmt: skip

        # The fee income of the settled order goes to the admin's chosen address, once.
        native = "0x" + "00" * 20
        owed = int(escrow.call("feesOf", native))
        assert owed > 0
        treasury = chain.new_account(ether=0)
        taken = kameng(adm, "admin", "fees", "withdraw", "--to", treasury.address)
        assert taken.exit_code == 0, taken.output
        assert chain.w3.eth.get_balance(treasury.address) == owed
        again = kameng(adm, "admin", "fees", "withdraw")
        assert again.exit_code == 2 and "no fees to withdraw" in again.output

        # A stablecoin allowed, then disallowed: the mirror follows.
        token, _ = deploy_contract(chain, admin, "TestToken", "Tether USD", "USDT")
        not_a_token = kameng(adm, "admin", "token", "allow", treasury.address)
        assert not_a_token.exit_code == 2 and "no contract at" in not_a_token.output
        allowed = kameng(adm, "admin", "token", "allow", token)
        assert allowed.exit_code == 0, allowed.output
        api.sign_in(admin)
        poll(
            "the token allowed in the mirror",
            lambda: token in api.request("GET", "/admin/overview").json()["allowed_tokens"],
        )
        disallowed = kameng(adm, "admin", "token", "disallow", token)
        assert disallowed.exit_code == 0, disallowed.output
        poll(
            "the token disallowed in the mirror",
            lambda: token not in api.request("GET", "/admin/overview").json()["allowed_tokens"],
        )
