#!/usr/bin/env python3
"""A solc stand-in for Slither: the project's shim with the project's compiler settings.

crytic-compile's standard-JSON mode builds its own `settings` and leaves out `viaIR`,
which CodeEscrow needs ("stack too deep" without it). This wrapper reads the standard JSON
that crytic-compile writes, overrides `viaIR`, `optimizer` and `evmVersion` with the values
in `contracts.compiler.SETTINGS` (so Slither sees the code the project deploys), and hands
it to `solc_shim.js`. `--version` and any other arguments go to the shim unchanged.

Run it as a program: `contracts.slither_triage` (scripts/slither) gives its path to
crytic-compile as the solc binary, and by hand it works as `slither ... --solc
contracts/slither_solc.py --solc-standard-json` (not under a `foundry.toml`, which makes
crytic-compile use Foundry instead).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `contracts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.compiler import SETTINGS, SHIM  # noqa: E402

#: The settings taken from the project and forced onto every request.
FORCED_KEYS: tuple[str, ...] = ("viaIR", "optimizer", "evmVersion")


def with_project_settings(request: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a standard-JSON request with the project's codegen settings.

    `viaIR`, `optimizer` and `evmVersion` are replaced by the project's values; remappings
    and output selection stay as the caller asked, and the project's remappings are added
    when the caller gave none.
    """
    out = copy.deepcopy(request)
    settings: dict[str, Any] = out.setdefault("settings", {})
    for key in FORCED_KEYS:
        settings[key] = copy.deepcopy(SETTINGS[key])
    if not settings.get("remappings"):
        settings["remappings"] = list(SETTINGS["remappings"])
    return out


def main(argv: list[str]) -> int:
    """Act as `solc`: rewrite a `--standard-json` request from stdin, pass the rest through."""
    if "--standard-json" not in argv:
        return subprocess.run(["node", str(SHIM), *argv], check=False).returncode
    request = json.loads(sys.stdin.read())
    body = json.dumps(with_project_settings(request))
    done = subprocess.run(
        ["node", str(SHIM), "--standard-json"], input=body, text=True, check=False
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
