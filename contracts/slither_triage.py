"""Run Slither over `contracts/src` and hold its findings against a triage file.

`scripts/slither` runs this module. Slither (its Python API, in this process) compiles
`contracts/src/*.sol` (the top level only, so the test-only contracts in
`contracts/src/test/` are not analysed; what CodeEscrow imports is) as one standard-JSON
input through `contracts/slither_solc.py`, which gives the compiler the project's `viaIR`,
optimizer and EVM version, and runs every detector, as the `slither` command does.

Each finding is reduced to a *key* that names what it is about, not where it is:
``detector:Contract.function[.local]`` (or ``detector:Contract.stateVariable``,
``detector:Contract`` or, for pragma findings, ``detector:solidity <our constraints>``). Line
numbers, expression text and signatures are left out, so edits elsewhere in the contract
do not change a key; several results with one key (e.g. overloads) share one triage entry.

Findings that touch none of our sources (OpenZeppelin's own assembly, pragmas, dead code)
are counted and ignored: the pinned dependency is not ours to triage. Everything else
must have an entry in `contracts/slither-triage.json` with a verdict and a one-line
reason, else the run fails. An entry that matches nothing is *stale* and also fails the
run (`--allow-stale` only warns): a leftover entry would silently accept a future finding
that happens to get the same key, and deleting the line is cheap.

Slither's own `slither-disable` comments are overridden (`show_ignored_findings`), so the
triage file stays the one place where a finding is explained.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.compiler import PACKAGE_DIR, ROOT, SETTINGS, SOURCES_DIR

TRIAGE_FILE = PACKAGE_DIR / "slither-triage.json"
SOLC_WRAPPER = PACKAGE_DIR / "slither_solc.py"
#: Findings are ours when one of their elements lies under this prefix, outside EXCLUDED.
OUR_PREFIX = "contracts/src/"
EXCLUDED_PREFIXES: tuple[str, ...] = ("contracts/src/test/",)
VERDICTS: frozenset[str] = frozenset({"false-positive", "accepted"})


@dataclass(frozen=True)
class Finding:
    """One Slither result in our sources, reduced to what the triage needs."""

    key: str
    check: str
    impact: str
    confidence: str
    location: str
    description: str


@dataclass(frozen=True)
class TriageEntry:
    """One line of the triage file: a finding key, a verdict and why."""

    key: str
    verdict: str
    reason: str


@dataclass
class Comparison:
    """The findings of one run held against the triage file."""

    triaged: list[Finding] = field(default_factory=list)
    untriaged: list[Finding] = field(default_factory=list)
    stale: list[TriageEntry] = field(default_factory=list)
    dependency_only: int = 0

    def ok(self, allow_stale: bool = False) -> bool:
        """True when every finding is triaged and (unless allowed) no entry is stale."""
        return not self.untriaged and (allow_stale or not self.stale)


class TriageFileError(ValueError):
    """The triage file is malformed: the message says which entry and why."""


# ------------------------------------------------------------------ keys


def _filename(element: Mapping[str, Any]) -> str:
    mapping = element.get("source_mapping") or {}
    name = mapping.get("filename_relative") or ""
    return str(name).replace("\\", "/")


def _is_ours(filename: str) -> bool:
    return filename.startswith(OUR_PREFIX) and not filename.startswith(EXCLUDED_PREFIXES)


def _scope_names(element: Mapping[str, Any]) -> list[str]:
    """Names from the outermost parent (the contract) down to the element; nodes are skipped
    because their name is the expression text, which any edit of the line changes."""
    names: list[str] = []
    current: Mapping[str, Any] | None = element
    while current:
        if current.get("type") != "node":
            names.append(str(current.get("name", "")))
        current = (current.get("type_specific_fields") or {}).get("parent")
    names.reverse()
    return names


def _primary(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first element of the result in our sources, or None if it touches none."""
    for element in result.get("elements", []):
        if _is_ours(_filename(element)):
            return element  # type: ignore[no-any-return]
    return None


def finding_key(result: Mapping[str, Any]) -> str | None:
    """Return the stable triage key of a Slither result, or None if it is not in our sources.

    The key is ``check:Contract.member[.local]``; pragma findings, which are about version
    constraints rather than a place, name our constraints: ``check:solidity 0.8.37``.
    """
    element = _primary(result)
    if element is None:
        return None
    check = str(result.get("check", "?"))
    if element.get("type") != "pragma":
        return f"{check}:{'.'.join(_scope_names(element))}"
    # Pragma findings concern version constraints, not a place: name our constraints (not our
    # files, so adding a source file with the same pragma keeps the key).
    ours = sorted(
        {
            str(e.get("name"))
            for e in result.get("elements", [])
            if e.get("type") == "pragma" and _is_ours(_filename(e))
        }
    )
    return f"{check}:solidity {' '.join(ours)}"


def _location(element: Mapping[str, Any]) -> str:
    mapping = element.get("source_mapping") or {}
    lines = mapping.get("lines") or []
    where = f"#{lines[0]}-{lines[-1]}" if len(lines) > 1 else (f"#{lines[0]}" if lines else "")
    return _filename(element) + where


def to_finding(result: Mapping[str, Any]) -> Finding | None:
    """Reduce one Slither detector result to a Finding, or None if it is not in our sources."""
    key = finding_key(result)
    element = _primary(result)
    if key is None or element is None:
        return None
    return Finding(
        key=key,
        check=str(result.get("check", "?")),
        impact=str(result.get("impact", "?")),
        confidence=str(result.get("confidence", "?")),
        location=_location(element),
        description=str(result.get("description", "")).strip(),
    )


# ------------------------------------------------------------------ triage file


def parse_triage(data: Any) -> dict[str, TriageEntry]:
    """Validate the triage file's parsed JSON and return its entries by key.

    Raises:
        TriageFileError: not an object with a `findings` list of {key, verdict, reason}, a
            duplicate key, an unknown verdict, or an empty or multi-line reason.
    """
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise TriageFileError('the triage file must be an object with a "findings" list')
    entries: dict[str, TriageEntry] = {}
    for i, raw in enumerate(data["findings"]):
        if not isinstance(raw, dict):
            raise TriageFileError(f"findings[{i}] is not an object")
        key, verdict, reason = raw.get("key"), raw.get("verdict"), raw.get("reason")
        if not isinstance(key, str) or ":" not in key:
            raise TriageFileError(f"findings[{i}]: key must look like 'detector:Contract.name'")
        if verdict not in VERDICTS:
            raise TriageFileError(f"{key}: verdict must be one of {sorted(VERDICTS)}")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            raise TriageFileError(f"{key}: reason must be one non-empty line")
        if key in entries:
            raise TriageFileError(f"{key}: listed twice")
        entries[key] = TriageEntry(key=key, verdict=verdict, reason=reason.strip())
    return entries


def load_triage(path: Path) -> dict[str, TriageEntry]:
    """Read and validate a triage file (see `parse_triage`)."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TriageFileError(f"{path}: not valid JSON: {exc}") from exc
    return parse_triage(data)


# ------------------------------------------------------------------ comparison


def detector_results(output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the detector results of Slither's `--json` output.

    Raises:
        RuntimeError: Slither reported that it failed (e.g. the contract did not compile).
    """
    if not output.get("success", False):
        raise RuntimeError(f"slither failed: {output.get('error') or 'no error message'}")
    results = (output.get("results") or {}).get("detectors") or []
    return list(results)


def compare(results: Iterable[Mapping[str, Any]], triage: Mapping[str, TriageEntry]) -> Comparison:
    """Sort Slither results into triaged, untriaged and dependency-only; find stale entries."""
    out = Comparison()
    seen: set[str] = set()
    for result in results:
        finding = to_finding(result)
        if finding is None:
            out.dependency_only += 1
            continue
        seen.add(finding.key)
        (out.triaged if finding.key in triage else out.untriaged).append(finding)
    out.stale = [entry for key, entry in sorted(triage.items()) if key not in seen]
    out.untriaged.sort(key=lambda f: (f.key, f.location))
    return out


def report(comparison: Comparison, allow_stale: bool = False, triage_path: str = "") -> str:
    """Render a comparison for the terminal: each problem, then a one-line summary."""
    lines: list[str] = []
    for f in comparison.untriaged:
        lines.append(f"UNTRIAGED [{f.check}, impact {f.impact}, confidence {f.confidence}]")
        lines.append(f"  key:      {f.key}")
        lines.append(f"  location: {f.location}")
        for text in f.description.splitlines():
            lines.append(f"  | {text.rstrip()}")
        lines.append("")
    if comparison.untriaged:
        lines.append(
            f"Fix each UNTRIAGED finding, or add its key to {triage_path or 'the triage file'} "
            "with a verdict and a one-line reason."
        )
    for entry in comparison.stale:
        tag = "warning: stale" if allow_stale else "STALE"
        lines.append(f"{tag} triage entry (matches no finding; delete it): {entry.key}")
    n_ours = len(comparison.triaged) + len(comparison.untriaged)
    verdict = "OK" if comparison.ok(allow_stale) else "FAIL"
    lines.append(
        f"slither: {verdict}: {n_ours} finding(s) in {OUR_PREFIX} "
        f"({len(comparison.triaged)} triaged, {len(comparison.untriaged)} untriaged), "
        f"{len(comparison.stale)} stale triage entr{'y' if len(comparison.stale) == 1 else 'ies'}, "
        f"{comparison.dependency_only} dependency-only result(s) ignored"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------ running Slither


def standard_json_input() -> dict[str, Any]:
    """The solc standard-JSON input Slither compiles: every `contracts/src/*.sol` (top level
    only; imports are followed) with the project's settings from `contracts.compiler`."""
    sources = {
        path.relative_to(ROOT).as_posix(): {"urls": [path.relative_to(ROOT).as_posix()]}
        for path in sorted(SOURCES_DIR.glob("*.sol"))
    }
    settings = {key: SETTINGS[key] for key in ("evmVersion", "optimizer", "viaIR", "remappings")}
    return {"language": "Solidity", "sources": sources, "settings": settings}


def run_slither() -> dict[str, Any]:
    """Run every Slither detector over `standard_json_input()`, in this process.

    Returns the same shape as `slither --json`: ``{"success", "error", "results":
    {"detectors": [...]}}``; a compile or analysis failure gives ``success: False``.

    Slither's command line is not used: with a `foundry.toml` at the repository root,
    crytic-compile hands any target under it to Foundry (which needs `forge` and ignores
    `--solc-standard-json`). Building the standard-JSON platform object ourselves skips that
    detection, and the solc wrapper still applies the project's settings.
    """
    from crytic_compile import CryticCompile
    from crytic_compile.platform.solc_standard_json import SolcStandardJson
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    options: dict[str, Any] = {"solc": str(SOLC_WRAPPER), "solc_disable_warnings": True}
    try:
        compilation = CryticCompile(SolcStandardJson(standard_json_input()), **options)
        slither = Slither(compilation, show_ignored_findings=True)
        for name in dir(all_detectors):
            detector = getattr(all_detectors, name)
            if inspect.isclass(detector) and issubclass(detector, AbstractDetector):
                slither.register_detector(detector)
        results = [result for batch in slither.run_detectors() for result in batch]
    except Exception as exc:  # crytic-compile and Slither raise many kinds
        return {"success": False, "error": f"{type(exc).__name__}: {exc}", "results": {}}
    return {"success": True, "error": None, "results": {"detectors": results}}


def main(argv: Sequence[str] | None = None) -> int:
    """Run Slither (or read its JSON), compare with the triage file, print, and return 0/1/2.

    0: every finding triaged and no stale entry; 1: untriaged findings or stale entries;
    2: Slither or the triage file failed.
    """
    parser = argparse.ArgumentParser(prog="scripts/slither", description=__doc__.split("\n")[0])
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE, help="the triage file")
    parser.add_argument(
        "--from-json", type=Path, help="compare an existing `slither --json` output instead"
    )
    parser.add_argument("--save-json", type=Path, help="also write Slither's JSON here")
    parser.add_argument(
        "--allow-stale", action="store_true", help="warn about stale entries instead of failing"
    )
    args = parser.parse_args(argv)
    try:
        triage = load_triage(args.triage)
        if args.from_json:
            output: dict[str, Any] = json.loads(args.from_json.read_text())
        else:
            with contextlib.chdir(ROOT):  # source names are relative to the repository root
                output = run_slither()
        if args.save_json:
            args.save_json.write_text(json.dumps(output, indent=1))
        results = detector_results(output)
    except (ValueError, RuntimeError, OSError) as exc:  # incl. TriageFileError, bad JSON
        print(f"slither: ERROR: {exc}", file=sys.stderr)
        return 2
    comparison = compare(results, triage)
    try:
        shown = args.triage.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(args.triage)
    print(report(comparison, args.allow_stale, shown))
    return 0 if comparison.ok(args.allow_stale) else 1


if __name__ == "__main__":
    sys.exit(main())
