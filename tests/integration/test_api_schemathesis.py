"""schemathesis over the whole OpenAPI of a served backend on PostgreSQL: anonymously and signed
in as a buyer, a supplier and an arbiter, with every check on.

It passes only with 0 server errors, 0 answers that break the document (status codes, bodies,
headers, ``Allow``), 0 schema-valid requests refused and 0 schema-violating requests accepted.
CI runs a bounded number of examples per operation; ``KAMENG_SCHEMATHESIS_EXAMPLES=200`` (or
more) runs a longer search. The seed is printed; ``KAMENG_SCHEMATHESIS_SEED`` replays one.

Anonymously, every operation runs (the public ones for real, the rest to their 401). Signed in,
a role runs only the operations under its own prefixes (`ROLE_PATHS`): the public ones behave
the same with a token, and another role's routes answer 403 from their role check before they
read the request (the API tests check it on samples: a buyer at the arbiter's queue in
test_api_catalog, a stranger at the operator's routes in test_api_admin, another supplier's
listing in test_api_supplier). Running every operation four times cost CI minutes for little.

The run is given generous rate limits (the limiter is tested on its own in
tests/backend/test_evidence_limits.py): with the real ones, most evidence requests would stop at
429 and the rest of those routes would go unexercised.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.api.ratelimit import Limit, RateLimiter
from tests.backend.api_helpers import Served, database, serve

pytestmark = pytest.mark.postgres

ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("KAMENG_SCHEMATHESIS_EXAMPLES", "5"))
SEED = int(os.environ.get("KAMENG_SCHEMATHESIS_SEED", str(random.SystemRandom().getrandbits(32))))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with database("postgres") as url, serve(database_url=url, buyers=1) as s:
        s.upload(6)
        bought = s.buy(s.dev.buyers[0], 2)
        s.current(bought.order_id, s.dev.buyers[0])
        server = s.runtime.server
        assert server is not None
        ctx = server.config.app.state.ctx
        ctx.limiter = RateLimiter({name: Limit(100_000, 100_000) for name in ctx.limiter.limits})
        yield s


#: The path prefixes each signed-in role's run covers (anonymous: every operation).
ROLE_PATHS = {
    "buyer": ("buyer", "auth", "notifications", "evidence"),
    "supplier": ("supplier", "auth", "notifications"),
    "arbiter": ("arbiter", "auth", "evidence"),
}


def run_schemathesis(
    served: Served, token: str | None, paths: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """One schemathesis run over the served document, with a bearer token if given, over the
    operations under `paths` (every operation if empty)."""
    args = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{served.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--no-color",
    ]
    if token is not None:
        args += ["--header", f"Authorization: Bearer {token}"]
    if paths:
        args += ["--include-path-regex", f"^/({'|'.join(paths)})(/|$)"]
    return subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.parametrize("who", ["anonymous", "buyer", "supplier", "arbiter"])
def test_schemathesis_finds_nothing(served: Served, who: str) -> None:
    token = None
    if who != "anonymous":
        account = served.dev.buyers[0] if who == "buyer" else getattr(served.dev, who)
        token = served.client(account).token
    done = run_schemathesis(served, token, ROLE_PATHS.get(who, ()))
    report = done.stdout[-12_000:]
    assert done.returncode == 0, f"schemathesis (seed {SEED}, as {who}) found:\n{report}"
    assert "generated" in report and " passed" in report, report
    # Health stays true after the run.
    assert served.client().health().status == "ok"
