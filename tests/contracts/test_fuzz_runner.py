"""The logic of `scripts/fuzz` (contracts/fuzz_runner.py), on forge's output as text (no forge)."""

from __future__ import annotations

import argparse
import re
import tomllib

import pytest

from contracts import fuzz_runner
from contracts.compiler import ROOT
from contracts.fuzz_runner import (
    CI,
    FOUNDRY_TOML,
    LONG,
    build_parser,
    parse_forge_output,
    parse_seed,
    replay_hint,
)
from contracts.storage import escrow_layout

PASS_OUTPUT = """\
Compiling 2 files with Solc 0.8.37
Compiler run successful!

Ran 1 test for contracts/fuzz/CodeEscrowInvariants.t.sol:CodeEscrowInvariants
[PASS] invariant_escrow() (runs: 200, calls: 50000, reverts: 0)

Suite result: ok. 1 passed; 0 failed; 0 skipped; finished in 93.12s (93.09s CPU time)
"""

FAIL_OUTPUT = """\
Ran 1 test for contracts/fuzz/CodeEscrowInvariants.t.sol:CodeEscrowInvariants
[FAIL: parties: isDeliveryKey(supplier-0, arbiter-1) disagrees with the calls made: the key, \
an arbiter, never accepted (at handler call 2) [1 in all]]
\t[Sequence] (original: 9, shrunk: 2)
\t\tsender=0x01 addr=[contracts/fuzz/EscrowHandler.sol:EscrowHandler]0xc7 \
calldata=warp(uint256) args=[1]
\t\tsender=0x02 addr=[contracts/fuzz/EscrowHandler.sol:EscrowHandler]0xc7 \
calldata=setDeliveryKey(uint256,uint256,uint256) args=[8, 7, 1]
 invariant_escrow() (runs: 12, calls: 3000, reverts: 0)

Failing tests:
Encountered 1 failing test in contracts/fuzz/CodeEscrowInvariants.t.sol:CodeEscrowInvariants
[FAIL: parties: ...]
"""


def test_a_pass_gives_the_campaign_counts() -> None:
    outcome = parse_forge_output(PASS_OUTPUT)
    assert outcome is not None
    assert outcome.passed
    assert (outcome.runs, outcome.calls, outcome.reverts) == (200, 50_000, 0)
    assert outcome.reason is None


def test_a_failure_gives_its_reason_and_the_calls_made_until_then() -> None:
    outcome = parse_forge_output(FAIL_OUTPUT)
    assert outcome is not None
    assert not outcome.passed
    assert (outcome.runs, outcome.calls) == (12, 3000)  # runs completed before the failing one
    assert (outcome.sequence, outcome.shrunk) == (9, 2)
    assert outcome.calls_made == 3009
    assert outcome.reason is not None
    assert outcome.reason.startswith("parties: isDeliveryKey(supplier-0, arbiter-1)")
    assert outcome.reason.endswith("[1 in all]")  # brackets inside the reason are kept


def test_a_failing_setup_is_a_failure_without_counts() -> None:
    outcome = parse_forge_output("[FAIL: setup failed: revert: boom] setUp() (gas: 0)\n")
    assert outcome is not None
    assert not outcome.passed
    assert outcome.calls_made == 0
    assert outcome.reason == "setup failed: revert: boom"


@pytest.mark.parametrize(
    "text", ["", "Error: Compiler run failed:\nError (2314): Expected ';'\n", "[PASS] no counts\n"]
)
def test_no_result_when_forge_did_not_run_the_test(text: str) -> None:
    assert parse_forge_output(text) is None


def test_the_harness_deploys_the_committed_artifact_not_a_compile_of_its_own() -> None:
    foundry = tomllib.loads(FOUNDRY_TOML.read_text())
    assert foundry["profile"]["default"]["src"] == "contracts/fuzz"  # CodeEscrow.sol not built
    harness = (ROOT / "contracts" / "fuzz" / "CodeEscrowInvariants.t.sol").read_text()
    assert 'deployCode("contracts/artifacts/CodeEscrow.json"' in harness


def test_stale_artifacts_are_refused_before_forge_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fuzz_runner, "artifacts_current", lambda: False)
    monkeypatch.setattr(fuzz_runner, "_run", lambda *_a, **_k: pytest.fail("forge ran"))
    assert fuzz_runner.main(["--runs", "1", "--depth", "1"]) == 2
    out = capsys.readouterr()
    assert "contracts/artifacts are stale" in out.out + out.err


def test_modes_are_big_enough() -> None:
    assert CI.calls >= 50_000
    assert LONG.calls >= 1_000_000


@pytest.mark.parametrize(("text", "seed"), [("0", 0), ("12345", 12345), ("0x3039", 12345)])
def test_seeds_in_decimal_or_hex(text: str, seed: int) -> None:
    assert parse_seed(text) == seed


@pytest.mark.parametrize("text", ["-1", "seed", str(2**256)])
def test_bad_seeds_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seed(text)


def test_the_replay_hint_repeats_the_campaign() -> None:
    args = build_parser().parse_args(["--long", "--depth", "40"])
    assert replay_hint(args, 99) == "scripts/fuzz --seed 99 --long --depth 40"


def _sol(path: str) -> str:
    return (ROOT / path).read_text()


def test_the_handler_calls_every_state_changing_function_of_the_escrow() -> None:
    interface = _sol("contracts/src/interfaces/ICodeEscrow.sol")
    handler = _sol("contracts/fuzz/EscrowHandler.sol")
    functions = re.findall(r"function (\w+)\([^;]*?\)\s*external(?! view| pure)", interface, re.S)
    assert len(functions) > 25
    missing = [name for name in functions if not re.search(rf"escrow\.{name}[({{]", handler)]
    assert missing == []


def test_the_fuzzer_targets_every_entry_point_of_the_handler() -> None:
    handler = _sol("contracts/fuzz/EscrowHandler.sol")
    test = _sol("contracts/fuzz/CodeEscrowInvariants.t.sol")
    entry_points = re.findall(r"function (\w+)\([^)]*\) external counted", handler)
    targeted = re.findall(r"EscrowHandler\.(\w+)\.selector", test)
    assert len(entry_points) > 30
    assert sorted(entry_points) == sorted(targeted)


def test_the_handler_reads_coupon_counters_at_the_layouts_slot() -> None:
    # EscrowReader has no coupon view: the handler reads `_couponUses` with vm.load at a slot
    # number of its own, which must be the committed layout's.
    handler = _sol("contracts/fuzz/EscrowHandler.sol")
    slots = re.findall(r"uint256 private constant _COUPON_USES_SLOT = (\d+);", handler)
    assert slots == [str(escrow_layout().variable("_couponUses").slot)]
