"""The Locust side of `kameng bench api`: the users of a sale, run headless in a child process.

Not a benchmark of its own (the leading underscore keeps it out of `kameng bench`'s list):
importing Locust monkey-patches the standard library for gevent, which must never happen in
the process that runs the benchmark. `bench.api` starts ``python -c "from bench._api_users
import main; main()"`` with the run's plan as one JSON object on stdin; this prints the
figures as one JSON object on stdout.

Every user is a shopper (`Shopper`) that browses and checks on its order, at a fixed number
of requests per second (`constant_throughput`), so the load offered is ``users * per_user``
requests a second whatever the answers' speed, up to the point where the server cannot keep
up (then the users wait and the rate falls: the measured rate says so). Each request is one
of `MIX`, drawn at random by weight. The buyers' and the supplier's sign-in tokens are made
before the run (signing in is not part of the mix).
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from typing import Any

import gevent
import psutil
from locust import FastHttpUser, constant_throughput, task
from locust.env import Environment

from bench._api_mix import MIX

_PLAN: dict[str, Any] = {}
_HOST = itertools.count()


class Shopper(FastHttpUser):
    """One visitor: a random buyer of the plan, on one of the API workers (round robin)."""

    host = "http://127.0.0.1"  # replaced per user in __init__
    wait_time = constant_throughput(1.0)  # replaced by `main` from the plan

    def __init__(self, environment: Environment) -> None:
        """Pick this user's API worker before the HTTP client is made."""
        hosts = _PLAN["hosts"]
        self.host = hosts[next(_HOST) % len(hosts)]
        super().__init__(environment)

    def _get(self, name: str, path: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client.get(path, name=name, headers=headers)

    def _buyer(self) -> dict[str, Any]:
        buyer: dict[str, Any] = random.choice(_PLAN["buyers"])
        return buyer

    @task(MIX["catalog"][1])
    def catalog(self) -> None:
        """The storefront: open listings with stock, price and the supplier's record."""
        self._get("GET /catalog/listings", "/catalog/listings?in_stock=true")

    @task(MIX["listing"][1])
    def listing(self) -> None:
        """A listing's page."""
        self._get("GET /catalog/listings/{id}", f"/catalog/listings/{_PLAN['listing_id']}")

    @task(MIX["order_status"][1])
    def order_status(self) -> None:
        """A buyer polling its order's status page."""
        buyer = self._buyer()
        order = random.choice(buyer["orders"])
        self._get("GET /buyer/orders/{id}", f"/buyer/orders/{order}", buyer["token"])

    @task(MIX["my_orders"][1])
    def my_orders(self) -> None:
        """A buyer's order list."""
        buyer = self._buyer()
        self._get("GET /buyer/orders", "/buyer/orders", buyer["token"])

    @task(MIX["release"][1])
    def release(self) -> None:
        """A buyer fetching the sealed release of a delivered order."""
        buyer = self._buyer()
        order = random.choice(buyer["orders"])
        self._get(
            "GET /buyer/orders/{id}/release", f"/buyer/orders/{order}/release", buyer["token"]
        )

    @task(MIX["dashboard"][1])
    def dashboard(self) -> None:
        """The supplier's dashboard."""
        self._get("GET /supplier/dashboard", "/supplier/dashboard", _PLAN["supplier_token"])

    @task(MIX["chain"][1])
    def chain(self) -> None:
        """What the web app asks first: the chain and the escrow."""
        self._get("GET /chain", "/chain")


def _entry(stats: Any, seconds: float) -> dict[str, Any]:
    return {
        "requests": int(stats.num_requests),
        "errors": int(stats.num_failures),
        "requests_per_s": round(stats.num_requests / seconds, 1),
        "p50_ms": float(stats.get_response_time_percentile(0.5) or 0),
        "p99_ms": float(stats.get_response_time_percentile(0.99) or 0),
        "max_ms": float(stats.max_response_time or 0),
    }


def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the plan's users for its ``seconds`` after a ``warmup`` and return the figures.

    Args:
        plan: ``hosts``, ``buyers`` (``token``, ``orders``), ``supplier_token``,
            ``listing_id``, ``users``, ``per_user`` (requests a second each), ``warmup`` and
            ``seconds``.

    Returns:
        ``total`` and ``endpoints`` (by request name): requests, errors, requests/s, p50, p99
        and max in ms; the first errors seen; the CPU seconds this process used while measuring.
    """
    _PLAN.clear()
    _PLAN.update(plan)
    Shopper.wait_time = constant_throughput(float(plan["per_user"]))
    env = Environment(user_classes=[Shopper])
    runner = env.create_local_runner()
    users = int(plan["users"])
    runner.start(users, spawn_rate=max(1.0, users / max(1.0, plan["warmup"] / 2)))
    gevent.sleep(float(plan["warmup"]))
    env.stats.reset_all()
    me = psutil.Process()
    cpu0 = sum(me.cpu_times()[:2])
    started = time.perf_counter()
    gevent.sleep(float(plan["seconds"]))
    took = time.perf_counter() - started
    cpu = sum(me.cpu_times()[:2]) - cpu0
    endpoints = {key: _entry(env.stats.get(name, "GET"), took) for key, (name, _) in MIX.items()}
    total = _entry(env.stats.total, took)
    errors = [
        f"{e.method} {e.name}: {e.error} (x{e.occurrences})" for e in env.stats.errors.values()
    ]
    runner.quit()
    return {
        "seconds": round(took, 2),
        "total": total,
        "endpoints": endpoints,
        "error_samples": errors[:10],
        "generator_cpu_s": round(cpu, 2),
    }


def main() -> None:
    """Entry of the child: the plan as JSON on stdin, the figures as JSON on stdout."""
    plan = json.loads(sys.stdin.read())
    sys.stdout.write(json.dumps(run(plan)))
