"""Build kameng's wheel, with every package under one parent import name: ``kameng``.

    .venv/bin/python scripts/build_wheel.py [--out DIR]   # default build/; prints the path

In the checkout, ``contracts``, ``backend``, ``indexer`` and ``bench`` are top-level folders and
import each other by those names. Installed that way, they would collide with anyone else's
``backend``. The wheel therefore holds them as ``kameng.contracts``, ``kameng.backend``,
``kameng.indexer`` and ``kameng.bench``: ``kameng`` is the distribution's own name on the package
index, so no other project can claim it. The checkout stays as it is; this script copies the
packages into the wheel and rewrites their absolute imports of each other on the way:

- the rewrite is found with `ast` (so an ``import`` in a string or a comment is never touched)
  and applied at the exact offsets the parser reports: ``from backend.x import y`` becomes
  ``from kameng.backend.x import y``; ``import indexer.models`` (which binds ``indexer``) becomes
  ``import kameng.indexer.models; from kameng import indexer``, so ``indexer.models.X`` still
  means the same; ``import a.b as c`` gets the prefix only;
- module names are not written as strings in the code: the supervisor's ``python -m`` target and
  the benchmarks' package are derived from ``__name__``, so there is nothing else to rewrite,
  and the build fails if a string constant naming one of our modules appears;
- package data: the contract artifacts, both Alembic migration folders (their versions and
  ``script.py.mako``; ``backend.db``/``indexer.db`` point Alembic at them by path, with no
  alembic.ini) and the web build ``backend/web/dist`` (with ``dist/chunks``). The Solidity
  sources, the web sources and node_modules stay out: outside a checkout
  `contracts.compiler.build` uses the shipped artifacts, which this build first checks are
  current, as it checks the web build against its sources.

The wheel is written directly (a zip with METADATA, WHEEL, entry_points.txt and RECORD, from
pyproject.toml's ``[project]``): it needs no build backend, so it builds offline, and the same
checkout always gives the same bytes. The ``kameng`` console script points at
``kameng.backend.cli:main``.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import re
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The one top-level import name the wheel installs.
PARENT = "kameng"
#: The checkout's top-level packages, each installed as ``kameng.<name>``.
PACKAGES = ("contracts", "backend", "indexer", "bench")
#: Files read at run time besides the modules, as globs relative to the checkout.
DATA = (
    "contracts/artifacts/*.json",
    "backend/migrations/**/*",
    "indexer/migrations/**/*",
    "backend/web/dist/**/*",
)
#: A string constant that is one of our dotted module names (``backend.api_worker``).
_MODULE_STRING = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+(?::\w+)?$")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The checkout cannot be turned into a wheel (stale build outputs, an import not
    rewritable)."""


def _ours(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in PACKAGES


def _names_our_module(value: str) -> bool:
    """Whether `value` is the dotted name of one of our modules (``backend.api_worker``, or
    ``backend.cli:main``), not merely shaped like one (a file name such as ``bench.json``)."""
    if not _MODULE_STRING.match(value):
        return False
    path = ROOT.joinpath(*value.partition(":")[0].split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _line_offsets(data: bytes) -> list[int]:
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def rewrite_imports(source: str, name: str = "<module>") -> str:
    """Put every absolute import of our packages in `source` under ``kameng``.

    Args:
        source: A module's text.
        name: Its path, for error messages.

    Returns:
        The rewritten text (lines keep their numbers).

    Raises:
        BuildError: a string constant names one of our modules, or an import spans lines in a
            way the rewrite does not handle.
    """
    data = source.encode()
    tree = ast.parse(data, filename=name)
    starts = _line_offsets(data)  # ast columns are UTF-8 byte offsets

    def offset(line: int, col: int) -> int:
        return starts[line - 1] + col

    edits: list[tuple[int, int, bytes]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _ours(node.module):
            begin = offset(node.lineno, node.col_offset)
            found = re.compile(rb"from[ \t]+").match(data, begin)
            module = (node.module or "").encode()
            if found is None or not data.startswith(module, found.end()):
                raise BuildError(f"{name}:{node.lineno}: cannot place the import's module name")
            edits.append((found.end(), found.end(), PARENT.encode() + b"."))
        elif isinstance(node, ast.Import) and any(_ours(a.name) for a in node.names):
            parts: list[str] = []
            for alias in node.names:
                if not _ours(alias.name):
                    parts.append(
                        f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                    )
                elif alias.asname:
                    parts.append(f"import {PARENT}.{alias.name} as {alias.asname}")
                elif "." in alias.name:
                    top = alias.name.split(".")[0]
                    parts.append(f"import {PARENT}.{alias.name}; from {PARENT} import {top}")
                else:
                    parts.append(f"from {PARENT} import {alias.name}")
            if node.end_lineno != node.lineno or node.end_col_offset is None:
                raise BuildError(f"{name}:{node.lineno}: an import of ours spans lines")
            begin = offset(node.lineno, node.col_offset)
            end = offset(node.end_lineno, node.end_col_offset)
            edits.append((begin, end, "; ".join(parts).encode()))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _names_our_module(node.value)
        ):
            raise BuildError(
                f"{name}:{node.lineno}: the string {node.value!r} names a module of ours, which "
                "the wheel renames; derive it from __name__ or an imported module instead"
            )
    for begin, end, text in sorted(edits, reverse=True):
        data = data[:begin] + text + data[end:]
    rewritten = data.decode()
    for node in ast.walk(ast.parse(rewritten, filename=name)):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            left = [node.module]
        elif isinstance(node, ast.Import):
            left = [a.name for a in node.names]
        else:
            continue
        if any(_ours(m) for m in left):
            raise BuildError(f"{name}:{node.lineno}: an import was left unrewritten")
    return rewritten


def _files() -> tuple[list[Path], list[Path]]:
    """The modules and the data files to ship, as paths relative to the checkout."""
    modules = sorted(
        p.relative_to(ROOT)
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts and "node_modules" not in p.parts
    )
    data = sorted(
        {
            p.relative_to(ROOT)
            for pattern in DATA
            for p in ROOT.glob(pattern)
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
        }
    )
    return modules, data


def _check_outputs() -> None:
    """Refuse to ship build outputs that do not match their sources."""
    sys.path.insert(0, str(ROOT))
    from backend.web import stale_reason
    from contracts.artifacts import artifacts_current

    if not artifacts_current():
        raise BuildError(
            "contracts/artifacts are stale against contracts/src: run `kameng compile`"
        )
    reason = stale_reason(ROOT)
    if reason is not None:
        raise BuildError(reason)


def _metadata(project: dict[str, Any]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '')}",
        f"License: {project.get('license', '')}",
    ]
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    for extra, deps in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            requirement, _, marker = dep.partition(";")
            condition = (
                f'({marker.strip()}) and extra == "{extra}"' if marker else f'extra == "{extra}"'
            )
            lines.append(f"Requires-Dist: {requirement.strip()}; {condition}")
    lines.append("Description-Content-Type: text/markdown")
    readme = (ROOT / str(project.get("readme", "README.md"))).read_text(encoding="utf-8")
    return "\n".join(lines) + "\n\n" + readme


def _entry_points(scripts: dict[str, str]) -> str:
    out = ["[console_scripts]"]
    for script, target in sorted(scripts.items()):
        module, _, attr = target.partition(":")
        if not _ours(module):
            raise BuildError(f"console script {script} points outside our packages: {target}")
        out.append(f"{script} = {PARENT}.{module}:{attr}")
    return "\n".join(out) + "\n"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(out_dir: Path, *, check_outputs: bool = True) -> Path:
    """Write ``kameng-<version>-py3-none-any.whl`` into `out_dir` and return its path.

    Args:
        out_dir: Where to write it (created if needed).
        check_outputs: Refuse stale contract artifacts or a stale web build (the tests turn it
            off: their own tests check both, and a wheel test should not fail for that too).

    Raises:
        BuildError: the artifacts or the web build are stale, or a module cannot be rewritten.
    """
    if check_outputs:
        _check_outputs()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name, version = str(project["name"]), str(project["version"])
    info = f"{name}-{version}.dist-info"
    entries: dict[str, bytes] = {
        f"{PARENT}/__init__.py": (
            b'"""kameng, installed: its packages are `kameng.contracts`, `kameng.backend`, '
            b'`kameng.indexer`\nand `kameng.bench` (scripts/build_wheel.py)."""\n'
        )
    }
    modules, data = _files()
    for path in modules:
        text = rewrite_imports((ROOT / path).read_text(encoding="utf-8"), path.as_posix())
        entries[f"{PARENT}/{path.as_posix()}"] = text.encode()
    for path in data:
        entries[f"{PARENT}/{path.as_posix()}"] = (ROOT / path).read_bytes()
    entries[f"{info}/METADATA"] = _metadata(project).encode()
    entries[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: kameng scripts/build_wheel.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries[f"{info}/entry_points.txt"] = _entry_points(project.get("scripts", {})).encode()
    entries[f"{info}/top_level.txt"] = f"{PARENT}\n".encode()
    record = io.StringIO()
    for arcname, content in entries.items():
        record.write(f"{arcname},{_digest(content)},{len(content)}\n")
    record.write(f"{info}/RECORD,,\n")
    entries[f"{info}/RECORD"] = record.getvalue().encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for arcname, content in entries.items():  # dist-info last, RECORD last of all
            member = zipfile.ZipInfo(arcname, _FIXED_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            archive.writestr(member, content)
    return wheel


def main(argv: list[str] | None = None) -> int:
    """Build the wheel; print its path, or one line saying why not (exit status 1)."""
    parser = argparse.ArgumentParser(
        prog="scripts/build_wheel.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "build", help="Directory (default: build/)."
    )
    args = parser.parse_args(argv)
    try:
        print(build_wheel(args.out))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
