"""Fixtures of the browser tests: one running kameng with its web front-end, and one headless
Chromium, per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import sync_playwright
from web_support import WebStack, launch_browser, start_stack

from contracts.chain import AnvilNode

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from contracts.chain import Chain


@pytest.fixture(scope="module")
def stack() -> Iterator[WebStack]:
    """kameng with the web front-end on the embedded chain, for one test module."""
    s = start_stack()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, with ``data-test`` as the test-id attribute."""
    with sync_playwright() as p:
        p.selectors.set_test_id_attribute("data-test")
        b = launch_browser(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def node() -> Iterator[tuple[AnvilNode, Chain]]:
    """A fresh anvil (automine) and a connection to it, stopped afterwards."""
    anvil = AnvilNode()
    chain = anvil.start()
    try:
        yield anvil, chain
    finally:
        anvil.stop()
