"""Run the stateful invariant fuzzing of CodeEscrow (`scripts/fuzz`) and report on it.

Foundry's forge runs `contracts/fuzz/CodeEscrowInvariants.t.sol` (configuration in
`foundry.toml`): `runs` sequences of `depth` random handler calls each, every invariant checked
after every call. This module picks the size (CI or `--long`), picks and prints the seed, runs
forge with it, passes its output through, and ends with one line: the calls made and the
violations found. It exits nonzero on a violation or when forge could not run, and then says
how to replay the failure.

The harness deploys the committed artifact (`contracts/artifacts/CodeEscrow.json`): the bytes
kameng deploys are the bytes fuzzed, and forge compiles only the harness (seconds, not the
half-minute of a viaIR compile through solcjs). Before fuzzing the runner checks that the
artifacts are current with the sources (`kameng compile` rebuilds them); the test suite checks
that they equal a fresh compile. A mutation check therefore edits the source, runs
`kameng compile`, then `scripts/fuzz`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.artifacts import artifacts_current
from contracts.compiler import ROOT

FORGE = ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
FOUNDRY_TOML = ROOT / "foundry.toml"
TEST_CONTRACT = "CodeEscrowInvariants"
INVARIANT = "invariant_escrow"


@dataclass(frozen=True)
class Mode:
    """A campaign size: `runs` sequences of `depth` calls."""

    name: str
    runs: int
    depth: int

    @property
    def calls(self) -> int:
        """Calls the campaign makes when nothing breaks."""
        return self.runs * self.depth


#: CI: 50,000 calls; about 210 s of fuzzing on a quiet 2-core machine (218 calls/s on 2026-12-03,
#: since the harness reads state through EscrowReader; 80-120 s with the views) plus about 20 s of
#: compiling the harness.
CI = Mode("ci", runs=200, depth=250)
#: Nightly or by hand: 1,000,000 calls in deeper sequences (about 33 minutes).
LONG = Mode("long", runs=2000, depth=500)


@dataclass(frozen=True)
class Outcome:
    """What forge reported for the invariant test.

    `runs` and `calls` count the runs completed (all of them on a pass); a failure happened at
    call `sequence` of the next run, and forge shrank that sequence to `shrunk` calls.
    """

    passed: bool
    runs: int
    calls: int
    reverts: int
    reason: str | None
    sequence: int = 0
    shrunk: int = 0

    @property
    def calls_made(self) -> int:
        """Every call made, up to the one that broke an invariant if one did."""
        return self.calls + self.sequence


_RESULT = re.compile(r"^\[(?P<status>PASS|FAIL)(?::\s*(?P<reason>.*))?\]", re.MULTILINE)
_COUNTS = re.compile(r"\(runs: (?P<runs>\d+), calls: (?P<calls>\d+), reverts: (?P<reverts>\d+)\)")
_SEQUENCE = re.compile(r"\[Sequence\] \(original: (?P<original>\d+), shrunk: (?P<shrunk>\d+)\)")


def parse_forge_output(text: str) -> Outcome | None:
    """Read the invariant test's result from forge's human-readable output.

    Forge prints ``[PASS] invariant_escrow() (runs: R, calls: C, reverts: V)`` or, on a broken
    invariant, ``[FAIL: reason]``, ``[Sequence] (original: N, shrunk: M)``, the shrunk calls
    and `` invariant_escrow() (runs: R, calls: C, reverts: V)``, where R runs of C calls in all
    were completed before the one that broke at its call N. A failure outside the campaign (in
    setUp) has no counts; they are then 0.

    Returns:
        The outcome, or None when the output holds no test result (forge failed to compile or
        to start).
    """
    status = _RESULT.search(text)
    if status is None:
        return None
    passed = status.group("status") == "PASS"
    counts = _COUNTS.search(text, status.start())
    runs, calls, reverts = (
        (int(counts.group("runs")), int(counts.group("calls")), int(counts.group("reverts")))
        if counts
        else (0, 0, 0)
    )
    if passed and counts is None:
        return None
    sequence = None if passed else _SEQUENCE.search(text, status.start())
    return Outcome(
        passed=passed,
        runs=runs,
        calls=calls,
        reverts=reverts,
        reason=None if passed else (status.group("reason") or "unknown").strip(),
        sequence=int(sequence.group("original")) if sequence else 0,
        shrunk=int(sequence.group("shrunk")) if sequence else 0,
    )


def parse_seed(text: str) -> int:
    """A seed as given on the command line: decimal or 0x-hex, 0 <= seed < 2^256."""
    try:
        seed = int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if not 0 <= seed < 2**256:
        raise argparse.ArgumentTypeError("the seed must be in [0, 2^256)")
    return seed


def build_parser() -> argparse.ArgumentParser:
    """The command line of `scripts/fuzz`."""
    parser = argparse.ArgumentParser(
        prog="scripts/fuzz",
        description="Stateful invariant fuzzing of CodeEscrow with Foundry (offline).",
    )
    parser.add_argument(
        "--long",
        action="store_true",
        help=f"{LONG.runs} runs x {LONG.depth} calls ({LONG.calls:,} calls) instead of "
        f"{CI.runs} x {CI.depth} ({CI.calls:,})",
    )
    parser.add_argument("--seed", type=parse_seed, help="fuzz seed (default: a random one)")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument("--depth", type=int, help="override the calls per run")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="replay the counterexample the last failing run saved (.forge/invariant-failures) "
        "with full traces, instead of a new campaign",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary lines")
    return parser


def forge_command(seed: int | None, verbosity: str) -> list[str]:
    """The forge invocation for the invariant test."""
    cmd = [str(FORGE), "test", "--match-contract", TEST_CONTRACT, "--match-test", INVARIANT]
    if seed is not None:
        cmd += ["--fuzz-seed", str(seed)]
    if verbosity:
        cmd.append(verbosity)
    return cmd


def failures_dir(foundry: Mapping[str, Any]) -> Path:
    """Where forge saves a broken sequence (and replays it from, before any new campaign)."""
    profile: Mapping[str, Any] = foundry.get("profile", {}).get("default", {})
    invariant: Mapping[str, Any] = profile.get("invariant", {})
    return ROOT / str(invariant.get("failure_persist_dir", "cache/invariant"))


def replay_hint(args: argparse.Namespace, seed: int) -> str:
    """The command that runs the same campaign again."""
    parts = ["scripts/fuzz", "--seed", str(seed)]
    if args.long:
        parts.append("--long")
    if args.runs is not None:
        parts += ["--runs", str(args.runs)]
    if args.depth is not None:
        parts += ["--depth", str(args.depth)]
    return " ".join(parts)


def _say(line: str) -> None:
    print(f"fuzz: {line}", flush=True)


def _run(cmd: Sequence[str], env: Mapping[str, str], quiet: bool) -> tuple[int, str]:
    """Run forge, echoing its output unless quiet; return its exit code and whole output."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    chunks = []
    for line in proc.stdout:
        chunks.append(line)
        if not quiet:
            sys.stdout.write(line)
            sys.stdout.flush()
    return proc.wait(), "".join(chunks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scripts/fuzz`; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not FORGE.is_file():
        _say(f"forge is missing ({FORGE.relative_to(ROOT)}); run scripts/setup.sh")
        return 2
    if shutil.which("node") is None:
        _say("node is not on PATH; the solc shim needs it")
        return 2
    if not artifacts_current():
        _say(
            "contracts/artifacts are stale (built from other sources than contracts/src): run "
            "`kameng compile` first; the fuzzer deploys the committed CodeEscrow artifact"
        )
        return 2
    foundry = tomllib.loads(FOUNDRY_TOML.read_text())
    saved = failures_dir(foundry)
    env = dict(os.environ)
    if args.replay:
        if not saved.exists():
            _say(f"nothing to replay: {saved.relative_to(ROOT)} holds no saved failure")
            return 2
        _say(f"replaying the saved counterexample in {saved.relative_to(ROOT)}")
        code, _ = _run(forge_command(None, "-vvvv"), env, quiet=False)
        return code

    mode = LONG if args.long else CI
    runs = args.runs if args.runs is not None else mode.runs
    depth = args.depth if args.depth is not None else mode.depth
    seed = args.seed if args.seed is not None else secrets.randbits(64)
    # A saved counterexample would be replayed instead of this campaign: start afresh.
    shutil.rmtree(saved, ignore_errors=True)
    env["FOUNDRY_INVARIANT_RUNS"] = str(runs)
    env["FOUNDRY_INVARIANT_DEPTH"] = str(depth)
    _say(f"seed {seed} ({mode.name} mode: {runs} runs x {depth} calls = {runs * depth:,} calls)")
    started = time.monotonic()
    code, output = _run(forge_command(seed, "-vv"), env, args.quiet)
    elapsed = time.monotonic() - started
    outcome = parse_forge_output(output)
    if outcome is None:
        _say(f"forge did not run the invariant test (exit {code}); see its output above")
        return 2
    if outcome.passed and code == 0:
        rate = outcome.calls / elapsed if elapsed > 0 else 0.0
        _say(
            f"{outcome.calls:,} calls in {outcome.runs} runs, 0 violations "
            f"({elapsed:.0f} s with compiling, {rate:.0f} calls/s; seed {seed})"
        )
        return 0
    _say(f"VIOLATION: {outcome.reason}")
    _say(
        f"broken at call {outcome.sequence} of run {outcome.runs + 1}, after "
        f"{outcome.calls_made:,} calls in all ({elapsed:.0f} s); forge shrank the sequence to "
        f"{outcome.shrunk} calls"
    )
    _say(f"seed {seed}; the same campaign again: {replay_hint(args, seed)}")
    _say(
        "the shrunk call sequence is printed above and saved in "
        f"{saved.relative_to(ROOT)}; replay it with traces: scripts/fuzz --replay"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
