"""The expensive calls are bounded: rate limits per wallet and per client address (429 with
``Retry-After``), the right status for who may not add what (403) and for orders the mirror
does not know (404), and SIWE messages too big to parse refused unparsed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.api.ratelimit import Limit, RateLimited, RateLimiter
from backend.auth import MAX_SIWE_LINE
from tests.backend.api_helpers import Bought, Served, serve


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = RateLimiter({"x": Limit(per_minute=6, burst=2)}, clock=clock)
    limiter.check("x", "a")
    limiter.check("x", "a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("x", "a", "tries")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "10"}  # one token every 10 s
    assert "at most 6 a minute (2 at once)" in str(refused.value)
    limiter.check("x", "b")  # another key has its own bucket
    clock.now += 9.9
    with pytest.raises(RateLimited) as again:
        limiter.check("x", "a")
    assert again.value.headers == {"Retry-After": "1"}
    clock.now += 0.1
    limiter.check("x", "a")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, Bought]]:
    with serve(buyers=2, agent=False) as s:
        s.upload(2)
        bought = s.buy(s.dev.buyers[0], 1)
        s.current(bought.order_id, bought.buyer)
        yield s, bought


def _token(served: Served, account: object) -> dict[str, str]:
    client = served.client(account)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {client.token}"}


def test_additions_by_the_wrong_party_are_403_and_unknown_orders_404(
    served: tuple[Served, Bought],
) -> None:
    s, bought = served
    base = f"{s.url}/evidence/orders/{bought.order_id}"
    as_buyer = _token(s, bought.buyer)
    as_supplier = _token(s, s.dev.supplier)
    secret = {"order_secret": "0x" + "11" * 32}
    wrong = httpx.post(base + "/buyer-secret", headers=as_supplier, json=secret)
    assert wrong.status_code == 403 and "only the buyer" in wrong.json()["detail"]
    wrong = httpx.post(base + "/supplier-codes", headers=as_buyer, json={"from_vault": True})
    assert wrong.status_code == 403 and "only the supplier" in wrong.json()["detail"]
    stranger = _token(s, s.dev.buyers[1])
    assert httpx.get(base, headers=stranger).status_code == 403
    unknown = f"{s.url}/evidence/orders/{bought.order_id + 1000}"
    for answer in (
        httpx.get(unknown, headers=as_buyer),
        httpx.post(unknown + "/buyer-secret", headers=as_buyer, json=secret),
    ):
        assert answer.status_code == 404 and "unknown order" in answer.json()["detail"]


def test_evidence_and_sign_in_are_rate_limited_per_wallet_and_per_address(
    served: tuple[Served, Bought],
) -> None:
    s, bought = served
    server = s.runtime.server
    assert server is not None
    ctx = server.config.app.state.ctx
    clock = Clock()
    as_buyer = _token(s, bought.buyer)
    as_supplier = _token(s, s.dev.supplier)
    before = ctx.limiter
    ctx.limiter = RateLimiter(
        {
            "evidence-wallet": Limit(per_minute=60, burst=2),
            "evidence-address": Limit(per_minute=60, burst=3),
            "verify-address": Limit(per_minute=60, burst=1),
            "auth-address": Limit(per_minute=60, burst=1),
        },
        clock=clock,
    )
    try:
        url = f"{s.url}/evidence/orders/{bought.order_id}"
        assert [httpx.get(url, headers=as_buyer).status_code for _ in range(3)] == [200, 200, 429]
        # The wallet's bucket is empty; another wallet still has the address's last token.
        assert httpx.get(url, headers=as_supplier).status_code == 200
        limited = httpx.get(url, headers=as_supplier)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert "too many evidence requests from here" in limited.json()["detail"]
        document = {"document": "{}"}
        assert httpx.post(f"{s.url}/evidence/verify", json=document).status_code == 200
        assert httpx.post(f"{s.url}/evidence/verify", json=document).status_code == 429
        assert httpx.post(f"{s.url}/auth/nonce").status_code == 200
        nonce = httpx.post(f"{s.url}/auth/nonce")
        assert nonce.status_code == 429 and "sign-in requests" in nonce.json()["detail"]
        clock.now += 2.0  # two tokens back everywhere (one a second)
        assert httpx.get(url, headers=as_buyer).status_code == 200
        assert httpx.post(f"{s.url}/auth/nonce").status_code == 200
    finally:
        ctx.limiter = before


def test_a_siwe_message_too_big_to_parse_is_refused_unparsed(
    served: tuple[Served, Bought],
) -> None:
    s, _ = served
    long_line = "0" * (MAX_SIWE_LINE + 1)
    many_lines = "\n".join(["x"] * 30)
    for message, why in ((long_line, "line 1 is 161 characters"), (many_lines, "30 lines")):
        answer = httpx.post(
            f"{s.url}/auth/verify", json={"message": message, "signature": "0x" + "00" * 65}
        )
        assert answer.status_code == 401 and why in answer.json()["detail"], answer.text


def test_evidence_bodies_are_read_strictly(served: tuple[Served, Bought]) -> None:
    """Found by the nasty-input suite: a lone surrogate in a bundle was a 500, and lax parsing
    read ``"yes"`` as true and ``1.0`` or ``"1"`` as an index."""
    s, bought = served
    document = '{"a":"\\ud800"}'
    checked = httpx.post(f"{s.url}/evidence/verify", json={"document": document})
    assert checked.status_code == 200, checked.text
    failed = {c["name"]: c["detail"] for c in checked.json()["claims"] if c["status"] == "fail"}
    assert "unpaired surrogate" in failed["canonical"]
    path = f"{s.url}/evidence/orders/{bought.order_id}/supplier-codes"
    as_supplier = _token(s, s.dev.supplier)
    code = {"salt": "0x" + "22" * 32, "code": "S01HLTE="}
    for body in (
        {"from_vault": "yes"},
        {"from_vault": 1},
        {"codes": [{**code, "index": 1.0}]},
        {"codes": [{**code, "index": "1"}]},
    ):
        answer = httpx.post(path, headers=as_supplier, json=body)
        assert answer.status_code == 422, (body, answer.text)
