"""The Slither triage logic of `scripts/slither`, on synthetic Slither JSON (Slither is not run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.compiler import SETTINGS
from contracts.slither_solc import with_project_settings
from contracts.slither_triage import (
    TRIAGE_FILE,
    TriageFileError,
    compare,
    finding_key,
    load_triage,
    main,
    parse_triage,
    report,
    standard_json_input,
)

ESCROW = "contracts/src/CodeEscrow.sol"
OZ = "node_modules/@openzeppelin/contracts/utils/TransientSlot.sol"


def _mapping(filename: str, lines: list[int]) -> dict[str, Any]:
    return {"filename_relative": filename, "lines": lines, "start": 0, "length": 1}


def _contract(name: str = "CodeEscrow", filename: str = ESCROW) -> dict[str, Any]:
    return {"type": "contract", "name": name, "source_mapping": _mapping(filename, [16, 800])}


def _function(
    name: str,
    contract: str = "CodeEscrow",
    filename: str = ESCROW,
    lines: tuple[int, int] = (10, 20),
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "source_mapping": _mapping(filename, list(range(lines[0], lines[1] + 1))),
        "type_specific_fields": {
            "parent": _contract(contract, filename),
            "signature": f"{name}(uint256)",
        },
    }


def _node(text: str, function: dict[str, Any], line: int = 12) -> dict[str, Any]:
    filename = function["source_mapping"]["filename_relative"]
    return {
        "type": "node",
        "name": text,
        "source_mapping": _mapping(filename, [line]),
        "type_specific_fields": {"parent": function},
    }


def _local(name: str, function: dict[str, Any], line: int = 11) -> dict[str, Any]:
    filename = function["source_mapping"]["filename_relative"]
    return {
        "type": "variable",
        "name": name,
        "source_mapping": _mapping(filename, [line]),
        "type_specific_fields": {"parent": function},
    }


def _pragma(version: str, filename: str) -> dict[str, Any]:
    return {
        "type": "pragma",
        "name": version,
        "source_mapping": _mapping(filename, [2]),
        "type_specific_fields": {"directive": ["solidity", version]},
    }


def _result(check: str, elements: list[dict[str, Any]], description: str = "") -> dict[str, Any]:
    return {
        "check": check,
        "impact": "Low",
        "confidence": "Medium",
        "description": description or f"{check} finding\n\t- detail",
        "elements": elements,
        "id": check,
    }


def _timestamp(function: str = "refund", lines: tuple[int, int] = (10, 20)) -> dict[str, Any]:
    fn = _function(function, lines=lines)
    return _result(
        "timestamp",
        [fn, _node("block.timestamp <= order.deadline", fn, lines[0] + 2)],
        f"CodeEscrow.{function}(uint256) ({ESCROW}#{lines[0]}-{lines[1]}) uses timestamp\n"
        f"\t- block.timestamp <= order.deadline ({ESCROW}#{lines[0] + 2})",
    )


def _triage(*keys: str) -> dict[str, Any]:
    return {"findings": [{"key": k, "verdict": "accepted", "reason": "because"} for k in keys]}


def _slither_output(*results: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "error": None, "results": {"detectors": list(results)}}


# ------------------------------------------------------------------ keys


def test_key_of_a_function_finding_names_detector_contract_and_function() -> None:
    assert finding_key(_timestamp()) == "timestamp:CodeEscrow.refund"


def test_key_survives_moved_lines_and_changed_expression_text() -> None:
    moved = _timestamp(lines=(400, 420))
    moved["elements"][1]["name"] = "order.deadline >= block.timestamp"
    moved["description"] = "something else entirely"
    assert finding_key(moved) == finding_key(_timestamp())


def test_key_of_a_local_variable_includes_its_function() -> None:
    settle = _function("settle")
    result = _result("uninitialized-local", [_local("bondSum", settle)])
    assert finding_key(result) == "uninitialized-local:CodeEscrow.settle.bondSum"


def test_key_of_a_finding_whose_first_element_is_a_node_uses_the_function() -> None:
    fn = _function("_pushPayment")
    result = _result("low-level-calls", [_node("to.call{value: amount}()", fn)])
    assert finding_key(result) == "low-level-calls:CodeEscrow._pushPayment"


def test_key_of_a_pragma_finding_names_our_constraints_not_our_files() -> None:
    elements = [_pragma("^0.8.20", OZ), _pragma("0.8.37", ESCROW)]
    key = finding_key(_result("pragma", elements))
    assert key == "pragma:solidity 0.8.37"
    new_file = _pragma("0.8.37", "contracts/src/BadCodeVerifier.sol")
    assert finding_key(_result("pragma", [new_file, *elements])) == key
    mixed = _pragma("^0.8.28", "contracts/src/interfaces/ICodeEscrow.sol")
    assert finding_key(_result("pragma", [mixed, *elements])) == "pragma:solidity 0.8.37 ^0.8.28"


def test_key_uses_our_element_when_a_dependency_element_comes_first() -> None:
    ours = _function("withdraw")
    result = _result("reentrancy-events", [_function("tstore", "TransientSlot", OZ), ours])
    assert finding_key(result) == "reentrancy-events:CodeEscrow.withdraw"


def test_key_of_a_contract_level_finding_is_the_contract() -> None:
    assert finding_key(_result("locked-ether", [_contract()])) == "locked-ether:CodeEscrow"


def test_dependency_only_and_test_contract_findings_have_no_key() -> None:
    assert finding_key(_result("assembly", [_function("tload", "TransientSlot", OZ)])) is None
    attacker = _function("attack", "ReentrantAttacker", "contracts/src/test/ReentrantAttacker.sol")
    assert finding_key(_result("reentrancy-eth", [attacker])) is None


# ------------------------------------------------------------------ comparison


def test_an_untriaged_finding_fails_and_is_printed_with_detector_location_and_description() -> None:
    comparison = compare([_timestamp()], parse_triage(_triage()))
    assert not comparison.ok()
    assert [f.key for f in comparison.untriaged] == ["timestamp:CodeEscrow.refund"]
    text = report(comparison)
    assert "UNTRIAGED [timestamp" in text
    assert f"{ESCROW}#10-20" in text
    assert "uses timestamp" in text
    assert "block.timestamp <= order.deadline" in text
    assert text.splitlines()[-1].startswith("slither: FAIL: 1 finding(s)")


def test_a_triaged_finding_passes() -> None:
    comparison = compare([_timestamp()], parse_triage(_triage("timestamp:CodeEscrow.refund")))
    assert comparison.ok()
    assert comparison.untriaged == [] and comparison.stale == []
    assert report(comparison).startswith("slither: OK: 1 finding(s)")


def test_a_triage_entry_does_not_cover_another_function_or_detector() -> None:
    triage = parse_triage(_triage("timestamp:CodeEscrow.refund"))
    other_fn = compare([_timestamp("dispute")], triage)
    other_check = compare([_result("incorrect-equality", [_function("refund")])], triage)
    assert [f.key for f in other_fn.untriaged] == ["timestamp:CodeEscrow.dispute"]
    assert [f.key for f in other_check.untriaged] == ["incorrect-equality:CodeEscrow.refund"]


def test_dependency_findings_are_counted_not_triaged() -> None:
    comparison = compare([_result("assembly", [_function("tload", "TransientSlot", OZ)])], {})
    assert comparison.ok()
    assert comparison.dependency_only == 1
    assert "1 dependency-only result(s) ignored" in report(comparison)


def test_a_stale_entry_fails_unless_allowed() -> None:
    triage = parse_triage(_triage("timestamp:CodeEscrow.refund", "assembly:CodeEscrow.gone"))
    comparison = compare([_timestamp()], triage)
    assert [e.key for e in comparison.stale] == ["assembly:CodeEscrow.gone"]
    assert not comparison.ok()
    assert "STALE triage entry" in report(comparison)
    assert comparison.ok(allow_stale=True)
    assert "warning: stale triage entry" in report(comparison, allow_stale=True)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"key": "a:B.c", "verdict": "accepted", "reason": "x"}] * 2, "listed twice"),
        ([{"key": "a:B.c", "verdict": "fine", "reason": "x"}], "verdict"),
        ([{"key": "a:B.c", "verdict": "accepted", "reason": " "}], "reason"),
        ([{"key": "a:B.c", "verdict": "accepted", "reason": "two\nlines"}], "reason"),
        ([{"key": "no-colon", "verdict": "accepted", "reason": "x"}], "key"),
    ],
)
def test_a_malformed_triage_file_is_refused(entries: list[dict[str, str]], message: str) -> None:
    with pytest.raises(TriageFileError, match=message):
        parse_triage({"findings": entries})


def test_the_committed_triage_file_is_well_formed() -> None:
    entries = load_triage(TRIAGE_FILE)
    assert entries
    assert all(":" in key for key in entries)


# ------------------------------------------------------------------ the command line


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_main_exit_codes_from_saved_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slither_json = _write(tmp_path, "s.json", _slither_output(_timestamp()))
    good = _write(tmp_path, "good.json", _triage("timestamp:CodeEscrow.refund"))
    empty = _write(tmp_path, "empty.json", _triage())
    stale = _write(tmp_path, "stale.json", _triage("timestamp:CodeEscrow.refund", "x:Y.z"))

    assert main(["--from-json", str(slither_json), "--triage", str(good)]) == 0
    assert main(["--from-json", str(slither_json), "--triage", str(empty)]) == 1
    assert "UNTRIAGED" in capsys.readouterr().out
    assert main(["--from-json", str(slither_json), "--triage", str(stale)]) == 1
    assert main(["--from-json", str(slither_json), "--triage", str(stale), "--allow-stale"]) == 0


def test_main_reports_a_failed_slither_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = _write(
        tmp_path, "s.json", {"success": False, "error": "stack too deep", "results": {}}
    )
    good = _write(tmp_path, "good.json", _triage())
    assert main(["--from-json", str(failed), "--triage", str(good)]) == 2
    assert "stack too deep" in capsys.readouterr().err
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    assert main(["--from-json", str(garbled), "--triage", str(good)]) == 2
    assert main(["--from-json", str(failed), "--triage", str(garbled)]) == 2


# ------------------------------------------------------------------ the solc wrapper


def test_solc_wrapper_forces_the_project_codegen_settings() -> None:
    request: dict[str, Any] = {
        "language": "Solidity",
        "sources": {ESCROW: {"urls": [ESCROW]}},
        "settings": {
            "optimizer": {"enabled": False},
            "remappings": ["x/=y/"],
            "outputSelection": {"*": {"*": ["abi"]}},
        },
    }
    out = with_project_settings(request)
    settings = out["settings"]
    assert settings["viaIR"] is SETTINGS["viaIR"] is True
    assert settings["optimizer"] == SETTINGS["optimizer"]
    assert settings["evmVersion"] == SETTINGS["evmVersion"]
    assert settings["remappings"] == ["x/=y/"]
    assert settings["outputSelection"] == {"*": {"*": ["abi"]}}
    assert request["settings"]["optimizer"] == {"enabled": False}  # the input is not changed
    assert with_project_settings({})["settings"]["remappings"] == SETTINGS["remappings"]


def test_slither_compiles_the_top_level_sources_with_the_project_settings() -> None:
    request = standard_json_input()
    assert ESCROW in request["sources"]
    assert not any(name.startswith("contracts/src/test/") for name in request["sources"])
    assert request["settings"]["viaIR"] is True
    assert request["settings"]["evmVersion"] == SETTINGS["evmVersion"]
    assert request["settings"]["remappings"] == SETTINGS["remappings"]
