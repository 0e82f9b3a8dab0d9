"""`kameng notify`: a wallet's notification endpoints through the API.

    kameng notify add --webhook https://shop.example/hooks/kameng --event order.paid
    kameng notify add --email me@example.com
    kameng notify list | test ID | remove ID | rotate-secret ID | dead | replay MESSAGE_ID
    kameng notify threshold LISTING_ID 50
    kameng notify kinds

Each command signs in with the wallet of ``--key-file`` (or ``--dev NAME``). A webhook's
signing secret is printed once, when it is made or rotated; keep it where the receiver
verifies signatures (Standard Webhooks).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from backend.cli.app import app, console
from backend.cli.common import (
    DEFAULT_API,
    ApiOption,
    DevOption,
    KeyFileOption,
    KeystoreOption,
    fail,
    load_wallet,
)
from backend.client import ApiError, KamengClient

notify_app = typer.Typer(
    help="Notification endpoints (webhooks, email): add, list, test, remove, dead letters.",
    no_args_is_help=True,
)
app.add_typer(notify_app, name="notify")


def _client(api: str, key_file: Any, dev: str | None, keystore: str | None) -> KamengClient:
    client = KamengClient(api)
    try:
        client.sign_in(load_wallet(key_file, dev, keystore=keystore))
    except ApiError as exc:
        raise fail(str(exc)) from exc
    return client


def _call(client: KamengClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return client.request(method, path, **kwargs).json()
    except ApiError as exc:
        raise fail(exc.detail or str(exc)) from exc


@notify_app.command("kinds")
def kinds(api: ApiOption = DEFAULT_API) -> None:
    """Every notification type and who receives it."""
    rows = _call(KamengClient(api), "GET", "/notifications/kinds")
    table = Table(title="notification types", title_justify="left")
    for name in ("type", "to", "says"):
        table.add_column(name)
    for k in rows:
        table.add_row(k["name"], ", ".join(k["recipients"]), k["text"])
    console.print(table)


@notify_app.command("add")
def add(
    webhook: Annotated[
        str | None, typer.Option(help="An https URL to POST signed messages to.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="An email address.")] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="A type to receive (repeat it); all types if none."),
    ] = None,
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Add a webhook or an email address; a webhook's secret is printed this once."""
    if (webhook is None) == (email is None):
        raise fail("give one of --webhook URL or --email ADDRESS")
    body: dict[str, object] = {
        "kind": "webhook" if webhook else "email",
        "target": webhook or email,
    }
    if event:
        body["events"] = event
    made = _call(
        _client(api, key_file, dev, keystore), "POST", "/notifications/endpoints", json=body
    )
    console.print(f"endpoint {made['id']}: {made['kind']} {made['target']}")
    console.print(f"  types: {', '.join(made['events'])}")
    if made.get("secret"):
        console.print(f"  signing secret (shown once): {made['secret']}", soft_wrap=True)


@notify_app.command("list")
def list_(
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """The wallet's endpoints."""
    rows = _call(_client(api, key_file, dev, keystore), "GET", "/notifications/endpoints")
    table = Table(title=f"{len(rows)} endpoint(s)", title_justify="left")
    for name in ("id", "kind", "target", "types", "arbiter"):
        table.add_column(name)
    for e in rows:
        table.add_row(
            str(e["id"]),
            e["kind"],
            e["target"],
            ", ".join(e["events"]),
            "yes" if e["as_arbiter"] else "",
        )
    console.print(table)


@notify_app.command("test")
def test(
    endpoint_id: Annotated[int, typer.Argument(help="The endpoint (see `kameng notify list`).")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Send a test message now. Exits 1 if it did not get through."""
    path = f"/notifications/endpoints/{endpoint_id}/test"
    result = _call(_client(api, key_file, dev, keystore), "POST", path)
    if not result["delivered"]:
        raise fail(f"the test message did not get through: {result['error']}")
    console.print(f"[green]✓[/green] endpoint {endpoint_id} got the test message")


@notify_app.command("remove")
def remove(
    endpoint_id: Annotated[int, typer.Argument(help="The endpoint.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Stop sending to an endpoint."""
    _call(
        _client(api, key_file, dev, keystore), "DELETE", f"/notifications/endpoints/{endpoint_id}"
    )
    console.print(f"endpoint {endpoint_id} removed")


@notify_app.command("rotate-secret")
def rotate_secret(
    endpoint_id: Annotated[int, typer.Argument(help="The webhook endpoint.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """A new signing secret for a webhook (printed this once; the old one stops at once)."""
    path = f"/notifications/endpoints/{endpoint_id}/rotate-secret"
    made = _call(_client(api, key_file, dev, keystore), "POST", path)
    console.print(f"new signing secret (shown once): {made['secret']}", soft_wrap=True)


@notify_app.command("dead")
def dead(
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Messages that did not get through within the retry budget."""
    rows = _call(_client(api, key_file, dev, keystore), "GET", "/notifications/dead")
    table = Table(title=f"{len(rows)} dead message(s)", title_justify="left")
    for name in ("message", "endpoint", "type", "attempts", "last error"):
        table.add_column(name)
    for m in rows:
        table.add_row(
            str(m["id"]), str(m["endpoint_id"]), m["type"], str(m["attempts"]), m["last_error"]
        )
    console.print(table)


@notify_app.command("replay")
def replay(
    message_id: Annotated[int, typer.Argument(help="The dead message (see `kameng notify dead`).")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Queue a dead message again, with a fresh retry budget."""
    _call(
        _client(api, key_file, dev, keystore),
        "POST",
        f"/notifications/messages/{message_id}/replay",
    )
    console.print(f"message {message_id} queued again")


@notify_app.command("threshold")
def threshold(
    listing_id: Annotated[int, typer.Argument(help="Your listing.")],
    value: Annotated[int, typer.Argument(help="Alert when stock is at or below this.")],
    api: ApiOption = DEFAULT_API,
    key_file: KeyFileOption = None,
    keystore: KeystoreOption = None,
    dev: DevOption = None,
) -> None:
    """Set a listing's low-stock threshold (库存预警; default 20)."""
    path = f"/notifications/listings/{listing_id}/threshold"
    _call(_client(api, key_file, dev, keystore), "PUT", path, json={"threshold": value})
    console.print(f"listing {listing_id}: alert at {value} code(s) or fewer")
