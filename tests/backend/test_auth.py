"""Sign-In with Ethereum: nonces are single-use, 128-bit, expire within 10 minutes; replays,
wrong domains, wrong chains, expired nonces and bad signatures are refused with a reason."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.orm import Session

from backend.auth import (
    NONCE_TTL_S,
    AuthError,
    SiweAuth,
    build_message,
    ensure_tables,
    request_text,
    sign_message,
)

DOMAIN = "kameng.test:8000"
CHAIN = 1337
ESCROW = "0x" + "12" * 20


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def session(tmp_path: object) -> Iterator[Session]:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/auth.db")
    ensure_tables(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


@pytest.fixture()
def auth(clock: Clock) -> SiweAuth:
    return SiweAuth(domain=DOMAIN, chain_id=CHAIN, secret=b"k" * 32, clock=clock)


@pytest.fixture()
def wallet() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


def _signed(
    auth: SiweAuth, session: Session, wallet: LocalAccount, **fields: object
) -> tuple[str, str]:
    nonce = auth.issue_nonce(session)
    values: dict[str, object] = {
        "domain": DOMAIN,
        "address": wallet.address,
        "uri": f"http://{DOMAIN}",
        "chain_id": CHAIN,
        "nonce": nonce.nonce,
        "issued_at": int(auth.clock()),
    }
    values.update(fields)
    message = build_message(**values)  # type: ignore[arg-type]
    return message, sign_message(wallet, message)


def test_nonces_are_128_bit_random_and_expire_within_ten_minutes(
    auth: SiweAuth, session: Session
) -> None:
    nonces = [auth.issue_nonce(session) for _ in range(50)]
    assert len({n.nonce for n in nonces}) == 50
    for n in nonces:
        assert re.fullmatch(r"[0-9a-f]{32}", n.nonce)
        assert 0 < n.expires_at - n.issued_at <= 600
    with pytest.raises(ValueError, match="10 minutes"):
        SiweAuth(domain=DOMAIN, chain_id=CHAIN, secret=b"k" * 32, nonce_ttl_s=601)


def test_sign_in_opens_a_session_naming_the_wallet(
    auth: SiweAuth, session: Session, wallet: LocalAccount
) -> None:
    message, signature = _signed(auth, session, wallet)
    token = auth.verify(session, message, signature)
    assert token.address == wallet.address
    assert auth.authenticate(token.token).address == wallet.address


def test_replayed_message_is_refused(
    auth: SiweAuth, session: Session, wallet: LocalAccount
) -> None:
    message, signature = _signed(auth, session, wallet)
    auth.verify(session, message, signature)
    with pytest.raises(AuthError, match="replayed message"):
        auth.verify(session, message, signature)


def test_expired_nonce_is_refused(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    message, signature = _signed(auth, session, wallet)
    clock.now += NONCE_TTL_S + 1
    with pytest.raises(AuthError, match="expired nonce"):
        auth.verify(session, message, signature)


def test_unknown_nonce_is_refused(auth: SiweAuth, session: Session, wallet: LocalAccount) -> None:
    message = build_message(
        domain=DOMAIN,
        address=wallet.address,
        uri=f"http://{DOMAIN}",
        chain_id=CHAIN,
        nonce="a" * 32,
        issued_at=int(auth.clock()),
    )
    with pytest.raises(AuthError, match="unknown nonce"):
        auth.verify(session, message, sign_message(wallet, message))


def test_wrong_domain_is_refused(auth: SiweAuth, session: Session, wallet: LocalAccount) -> None:
    message, signature = _signed(auth, session, wallet, domain="evil.example")
    with pytest.raises(AuthError, match="wrong domain"):
        auth.verify(session, message, signature)


def test_wrong_chain_is_refused(auth: SiweAuth, session: Session, wallet: LocalAccount) -> None:
    message, signature = _signed(auth, session, wallet, chain_id=1)
    with pytest.raises(AuthError, match="wrong chain"):
        auth.verify(session, message, signature)


def test_signature_of_another_wallet_is_refused_and_keeps_the_nonce(
    auth: SiweAuth, session: Session, wallet: LocalAccount
) -> None:
    message, _ = _signed(auth, session, wallet)
    other: LocalAccount = Account.create()
    with pytest.raises(AuthError, match="bad signature"):
        auth.verify(session, message, sign_message(other, message))
    # a forged attempt must not burn the nonce of the real wallet
    assert auth.verify(session, message, sign_message(wallet, message)).address == wallet.address


def test_expired_message_is_refused(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    message, signature = _signed(auth, session, wallet, expires_at=int(clock.now) + 5)
    clock.now += 10
    with pytest.raises(AuthError, match="expired message"):
        auth.verify(session, message, signature)


def test_malformed_message_is_refused(auth: SiweAuth, session: Session) -> None:
    with pytest.raises(AuthError, match="malformed SIWE message"):
        auth.verify(session, "please let me in", "0x" + "00" * 65)


def test_tampered_forged_and_expired_tokens_are_refused(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    token = auth.verify(session, *_signed(auth, session, wallet)).token
    head, tail = token.split(".")
    with pytest.raises(AuthError, match="invalid session token"):
        auth.authenticate(head + "." + ("A" if tail[0] != "A" else "B") + tail[1:])
    other = SiweAuth(domain=DOMAIN, chain_id=CHAIN, secret=b"z" * 32, clock=clock)
    with pytest.raises(AuthError, match="invalid session token"):
        other.authenticate(token)
    with pytest.raises(AuthError, match="malformed"):
        auth.authenticate("garbage")
    clock.now += auth.session_ttl_s + 1
    with pytest.raises(AuthError, match="session expired"):
        auth.authenticate(token)


def test_request_signature_names_signer_action_and_time(
    auth: SiweAuth, wallet: LocalAccount, clock: Clock
) -> None:
    now = int(clock.now)
    text = request_text(action="GET /buyer/orders", chain_id=CHAIN, escrow=ESCROW, timestamp=now)
    signature = sign_message(wallet, text)
    ok = auth.verify_request_signature(
        action="GET /buyer/orders",
        escrow=ESCROW,
        address=wallet.address,
        timestamp=now,
        signature=signature,
    )
    assert ok.address == wallet.address
    with pytest.raises(AuthError, match="bad request signature"):
        auth.verify_request_signature(
            action="GET /buyer/orders/1/release",
            escrow=ESCROW,
            address=wallet.address,
            timestamp=now,
            signature=signature,
        )
    clock.now += 301
    with pytest.raises(AuthError, match="stale request signature"):
        auth.verify_request_signature(
            action="GET /buyer/orders",
            escrow=ESCROW,
            address=wallet.address,
            timestamp=now,
            signature=signature,
        )
