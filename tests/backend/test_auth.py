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
    SignedRequest,
    SiweAuth,
    auth_metadata,
    build_message,
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
    auth_metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


@pytest.fixture()
def auth(clock: Clock) -> SiweAuth:
    return SiweAuth(domain=DOMAIN, chain_id=CHAIN, escrow=ESCROW, secret=b"k" * 32, clock=clock)


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
        SiweAuth(domain=DOMAIN, chain_id=CHAIN, escrow=ESCROW, secret=b"k" * 32, nonce_ttl_s=601)


def test_sign_in_opens_a_session_naming_the_wallet(
    auth: SiweAuth, session: Session, wallet: LocalAccount
) -> None:
    message, signature = _signed(auth, session, wallet)
    token = auth.verify(session, message, signature)
    assert token.address == wallet.address
    assert auth.authenticate(token.token, session=session).address == wallet.address


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
        auth.authenticate(head + "." + ("A" if tail[0] != "A" else "B") + tail[1:], session=session)
    other = SiweAuth(domain=DOMAIN, chain_id=CHAIN, escrow=ESCROW, secret=b"z" * 32, clock=clock)
    with pytest.raises(AuthError, match="invalid session token"):
        other.authenticate(token, session=session)
    with pytest.raises(AuthError, match="malformed"):
        auth.authenticate("garbage", session=session)
    clock.now += auth.session_ttl_s + 1
    with pytest.raises(AuthError, match="session expired"):
        auth.authenticate(token, session=session)


def _signed_request(
    wallet: LocalAccount, request: SignedRequest, nonce: str, when: int, *, domain: str = DOMAIN
) -> dict[str, object]:
    text = request_text(
        domain=domain, chain_id=CHAIN, escrow=ESCROW, request=request, nonce=nonce, timestamp=when
    )
    return {
        "request": request,
        "address": wallet.address,
        "timestamp": when,
        "nonce": nonce,
        "signature": sign_message(wallet, text),
    }


UPLOAD = SignedRequest(method="POST", path="/supplier/listings/1/codes", query="", body=b"A1\n")


def test_a_signed_request_binds_method_path_query_body_domain_and_time(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    now = int(clock.now)
    ok = auth.verify_request_signature(session, **_signed_request(wallet, UPLOAD, "a1" * 16, now))
    assert ok.address == wallet.address and ok.signed_request and ok.token_id is None
    # The captured signature, sent with anything else, is refused: another body, path, method,
    # query, or for another server.
    for other in (
        SignedRequest(method="POST", path=UPLOAD.path, query="", body=b"B2\n"),
        SignedRequest(method="POST", path="/supplier/listings/2/codes", query="", body=b"A1\n"),
        SignedRequest(method="PUT", path=UPLOAD.path, query="", body=b"A1\n"),
        SignedRequest(method="POST", path=UPLOAD.path, query="x=1", body=b"A1\n"),
    ):
        fields = _signed_request(wallet, UPLOAD, "b2" * 16, now)
        fields["request"] = other
        with pytest.raises(AuthError, match="bad request signature"):
            auth.verify_request_signature(session, **fields)  # type: ignore[arg-type]
    elsewhere = _signed_request(wallet, UPLOAD, "c3" * 16, now, domain="evil.example")
    with pytest.raises(AuthError, match="bad request signature"):
        auth.verify_request_signature(session, **elsewhere)  # type: ignore[arg-type]


def test_a_signed_request_is_good_once_within_a_short_symmetric_window(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    now = int(clock.now)
    fields = _signed_request(wallet, UPLOAD, "d4" * 16, now)
    auth.verify_request_signature(session, **fields)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="replayed request"):
        auth.verify_request_signature(session, **fields)  # type: ignore[arg-type]
    for skew in (61, -61):
        late = _signed_request(wallet, UPLOAD, "e5" * 16, now + skew)
        with pytest.raises(AuthError, match="stale request signature"):
            auth.verify_request_signature(session, **late)  # type: ignore[arg-type]
    for skew in (60, -60):
        edge = _signed_request(wallet, UPLOAD, f"{skew + 100:032x}", now + skew)
        auth.verify_request_signature(session, **edge)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="X-Kameng-Nonce must be"):
        auth.verify_request_signature(
            session,
            **_signed_request(wallet, UPLOAD, "F6" * 16, now),  # type: ignore[arg-type]
        )


def test_a_forged_request_does_not_use_up_the_nonce(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    now = int(clock.now)
    fields = _signed_request(wallet, UPLOAD, "a7" * 16, now)
    forged = dict(
        fields, signature=_signed_request(Account.create(), UPLOAD, "a7" * 16, now)["signature"]
    )
    with pytest.raises(AuthError, match="bad request signature"):
        auth.verify_request_signature(session, **forged)  # type: ignore[arg-type]
    assert auth.verify_request_signature(session, **fields).address == wallet.address  # type: ignore[arg-type]


def test_logout_revokes_one_token_or_every_token_of_the_wallet(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    first = auth.verify(session, *_signed(auth, session, wallet)).token
    second = auth.verify(session, *_signed(auth, session, wallet)).token
    auth.revoke(session, auth.authenticate(first, session=session))
    with pytest.raises(AuthError, match="session revoked"):
        auth.authenticate(first, session=session)
    assert auth.authenticate(second, session=session).address == wallet.address
    clock.now += 1
    auth.revoke(session, auth.authenticate(second, session=session), everywhere=True)
    with pytest.raises(AuthError, match="session revoked"):
        auth.authenticate(second, session=session)
    clock.now += 1
    later = auth.verify(session, *_signed(auth, session, wallet)).token
    assert auth.authenticate(later, session=session).address == wallet.address


def test_a_token_is_bound_to_its_escrow(
    auth: SiweAuth, session: Session, wallet: LocalAccount, clock: Clock
) -> None:
    token = auth.verify(session, *_signed(auth, session, wallet)).token
    other = SiweAuth(
        domain=DOMAIN, chain_id=CHAIN, escrow="0x" + "34" * 20, secret=b"k" * 32, clock=clock
    )
    with pytest.raises(AuthError, match="is for escrow"):
        other.authenticate(token, session=session)
