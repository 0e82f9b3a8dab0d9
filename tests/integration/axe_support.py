"""axe-core in the browser tests: the page as it is now must have no serious or critical
accessibility violation (issue 18).

`assert_accessible(page, name)` runs axe-core (node_modules/axe-core, pinned in package.json) on
the whole document and fails with one line per serious or critical violation: the rule, its
impact, the first few elements it found and axe's one-line help. Call it at each state a test
reaches (a page, an open dialog, an error), after the state is on screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from web_support import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: What fails a test; "moderate" and "minor" findings are left to a person's judgement.
SERIOUS = frozenset({"serious", "critical"})
#: How many of a violation's elements a failure names.
TARGETS = 4

#: Run axe on the document; only the violations, as plain data. The pages' own
#: Content-Security-Policy refuses an injected <script> (add_script_tag), so axe's source is
#: evaluated through the DevTools protocol instead, which the policy does not govern.
_RUN = """async (only) => {
  const options = { resultTypes: ["violations"] };
  if (only) options.runOnly = { type: "rule", values: only };
  const result = await axe.run(document, options);
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
    summary: (v.nodes[0] && v.nodes[0].failureSummary) || "",
  }));
}"""


@cache
def _axe_source() -> str:
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: run `npm ci` (scripts/setup.sh does)")
    return AXE.read_text(encoding="utf-8")


#: The rules that depend on the colour scheme, for a second look in dark mode.
COLOUR_RULES = ("color-contrast", "link-in-text-block")


def axe_violations(page: Page, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every axe-core violation on `page` now (all impacts; of the rules `only` when given), as
    dicts: id, impact, help, targets (CSS selectors), summary (axe's "fix any of" text for the
    first element)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    found: list[dict[str, Any]] = page.evaluate(_RUN, list(only) if only else None)
    return found


def accessibility_problems(page: Page, name: str, only: Sequence[str] | None = None) -> list[str]:
    """The serious and critical axe-core violations on `page` (the `name`d state; of the rules
    `only` when given), one readable line each: ``- rule (impact) on <name>: help; at
    selectors. how to fix``."""
    lines = []
    for v in axe_violations(page, only):
        if v["impact"] not in SERIOUS:
            continue
        more = len(v["targets"]) - TARGETS
        where = ", ".join(v["targets"][:TARGETS]) + (f" and {more} more" if more > 0 else "")
        summary = " ".join(v["summary"].split())
        lines.append(f"- {v['id']} ({v['impact']}) on {name}: {v['help']}; at {where}. {summary}")
    return lines


def dark_problems(page: Page, name: str) -> list[str]:
    """`accessibility_problems` of the colour rules with the page in its dark colour scheme
    (``prefers-color-scheme: dark``); the page is back in light afterwards."""
    page.emulate_media(color_scheme="dark")
    try:
        return accessibility_problems(page, f"{name} (dark)", COLOUR_RULES)
    finally:
        page.emulate_media(color_scheme="light")


def assert_accessible(page: Page, name: str, *, dark: bool = False) -> None:
    """Fail if axe-core finds a serious or critical violation on `page` (the `name`d state);
    with `dark`, also in the dark colour scheme (`dark_problems`)."""
    lines = accessibility_problems(page, name) + (dark_problems(page, name) if dark else [])
    assert not lines, "axe-core found:\n" + "\n".join(lines)
