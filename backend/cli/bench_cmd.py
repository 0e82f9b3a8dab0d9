"""`kameng bench NAME`: run a benchmark from the `bench` package; JSON on the last line.

`--quick` runs it at small sizes (seconds, for CI); its result has the same fields plus
``"quick": true``, so a quick figure is never mistaken for a measurement.

The benchmarks sit outside the runtime packages (they drive the runtime; the runtime never
needs them), so this command loads the `bench` package by name when it runs, and says so when
it is not there (an installed wheel without the checkout's `bench/`).
"""

from __future__ import annotations

import importlib
import json
import pkgutil

import typer

from backend.cli.app import app, console, err_console

#: The package holding one module per benchmark, each with ``run(console, quick)``: ``bench``
#: beside the ``backend`` that holds this module (``backend.cli.bench_cmd``), so it is
#: ``kameng.bench`` in the installed wheel (scripts/build_wheel.py).
BENCH_PACKAGE = ".".join([*__name__.split(".")[:-3], "bench"])


def available() -> list[str]:
    """Names of the benchmarks in the `bench` package (none if it is not importable)."""
    try:
        package = importlib.import_module(BENCH_PACKAGE)
    except ModuleNotFoundError:
        return []
    return sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )


@app.command("bench")
def bench_cmd(
    name: str = typer.Argument(..., help="Which benchmark: gas, indexer, latency."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the result as JSON on the last line."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help='Small sizes, seconds to run: checks the benchmark works (adds "quick": true).',
    ),
) -> None:
    """Run a benchmark. Results are ratios against a baseline measured in the same run."""
    names = available()
    if not names:
        err_console.print(
            "[red]error:[/red] the benchmarks are not installed here: run `kameng bench` from "
            "a checkout of kameng (they live in its bench/ folder)"
        )
        raise typer.Exit(2)
    if name not in names:
        err_console.print(
            f"[red]error:[/red] no benchmark {name!r}; choose one of {', '.join(names)}"
        )
        raise typer.Exit(2)
    module = importlib.import_module(f"{BENCH_PACKAGE}.{name}")
    result = module.run(console=console, quick=quick)
    if quick:
        result["quick"] = True
    if as_json:
        print(json.dumps(result, separators=(", ", ": ")))
    else:
        console.print_json(json.dumps(result))
