"""kameng installed like a library (issue 12): the wheel that scripts/build_wheel.py builds holds
one top-level import name, ``kameng``, with the contract artifacts, both Alembic migration
folders and the web build as package data; pip installs it into a fresh virtual environment
outside the checkout, where `kameng demo` and `kameng serve` run from a directory with no
checkout on the import path.

The fresh environment gets its dependencies from the running environment's site-packages
through a ``.pth`` file written after the install (so pip neither downloads nor sees the
checkout's editable install): what is tested is our package's layout, not pip's resolver.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from contracts.chain import free_port

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("contracts", "backend", "indexer", "bench")


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_wheel", ROOT / "scripts/build_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def installed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """(the wheel, the fresh environment's bin/, the environment to run it with)."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    # Whether the artifacts and dist are current is checked by their own tests.
    wheel = _build_script().build_wheel(base / "dist", check_outputs=False)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install"),
            *("--no-deps", "--no-index", "--disable-pip-version-check", "-q", str(wheel)),
        ],
        check=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "kameng_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("KAMENG_")}
    env["COLUMNS"] = "200"
    yield wheel, venv / "bin", env


def test_rewrite_imports_keeps_meaning_and_touches_only_imports() -> None:
    script = _build_script()
    rewrite = script.rewrite_imports
    source = (
        "import os, indexer.models\n"
        "from backend.x import (a,\n    b)\n"
        "from .sibling import c\n"
        "import contracts.chain as chain\n"
        "if True:\n    import bench\n"
        "s = 'from backend.x import y'  # import backend\n"
        "t = indexer.models.Uint256\n"
        "u = 'bench.json'\n"
    )
    assert rewrite(source) == (
        "import os; import kameng.indexer.models; from kameng import indexer\n"
        "from kameng.backend.x import (a,\n    b)\n"
        "from .sibling import c\n"
        "import kameng.contracts.chain as chain\n"
        "if True:\n    from kameng import bench\n"
        "s = 'from backend.x import y'  # import backend\n"
        "t = indexer.models.Uint256\n"
        "u = 'bench.json'\n"
    )
    with pytest.raises(script.BuildError, match="names a module of ours"):
        rewrite("CHILD = ['-m', 'backend.api_worker']\n")


def test_wheel_holds_one_top_level_name_and_its_data(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"kameng", "kameng-0.1.0.dist-info"}, tops
    for required in (
        "kameng/contracts/artifacts/CodeEscrow.json",
        "kameng/backend/migrations/env.py",
        "kameng/backend/migrations/script.py.mako",
        "kameng/backend/migrations/versions/0001_vault.py",
        "kameng/indexer/migrations/env.py",
        "kameng/indexer/migrations/versions/0001_mirror.py",
        "kameng/backend/web/dist/index.html",
        "kameng/backend/web/dist/app.js",
        "kameng/bench/gas.py",
    ):
        assert required in names, required
    assert any(n.startswith("kameng/backend/web/dist/chunks/") for n in names)
    assert not any("/src/" in n or n.endswith((".sol", ".pyc")) for n in names)
    entry = zipfile.ZipFile(wheel).read("kameng-0.1.0.dist-info/entry_points.txt").decode()
    assert "kameng = kameng.backend.cli:main" in entry


def test_installed_kameng_runs_demo_and_serve_outside_the_checkout(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, bin_dir, env = installed
    assert ROOT not in tmp_path.parents
    probe = (
        "import importlib.util, json, sys, kameng.backend.cli as cli\n"
        "from kameng.backend.cli.bench_cmd import available\n"
        "from kameng.contracts.compiler import build, in_checkout\n"
        "print(json.dumps([sys.path, cli.__file__, "
        f"[n for n in {TOP_LEVEL!r} if importlib.util.find_spec(n)], "
        "available(), in_checkout(), build()]))"
    )
    found = subprocess.run(
        [str(bin_dir / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    path, cli_file, importable, benchmarks, checkout, compiled = json.loads(found.stdout)
    # The checkout is not on the import path (only the .venv's site-packages, for dependencies;
    # '' is the temporary cwd), the CLI comes from the fresh environment, and none of the
    # checkout's top-level names is importable.
    deps = sysconfig.get_paths()["purelib"]
    assert not [p for p in path if p == str(ROOT) or (ROOT in Path(p).parents and p != deps)]
    assert Path(cli_file).is_relative_to(bin_dir.parent), cli_file
    assert importable == [], importable
    # The benchmarks are found as kameng.bench; with no sources here nothing is compiled.
    assert "gas" in benchmarks and checkout is False and compiled is False

    # serve starts first and boots (deploys, stocks its dev listing) while the demo runs: each
    # in its own directory, as two users of the installed package would.
    serve_dir, demo_dir = tmp_path / "serve", tmp_path / "demo"
    serve_dir.mkdir()
    demo_dir.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = serve_dir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "kameng"), "serve", "--port", str(port)],
            cwd=serve_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            demo = subprocess.run(
                [str(bin_dir / "kameng"), "demo", "--buyers", "4", "--codes", "62"],
                cwd=demo_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr
            transcript = json.loads((demo_dir / "var" / "demo-transcript.json").read_text())
            assert len(transcript["steps"]) > 20, transcript

            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"kameng serve exited:\n{log.read_text()}"
                try:
                    health = httpx.get(url + "/health", timeout=2)
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"kameng serve is silent:\n{log.read_text()}"
                time.sleep(0.2)  # polling the server's port, with a deadline
            body = health.json()
            assert body["status"] == "ok" and body["api_restarts"] == 0, body
            assert set(body["workers"].values()) == {"running"}, body
            page = httpx.get(url + "/")
            assert page.status_code == 200 and "<!doctype html>" in page.text.lower()
            assert httpx.get(url + "/app.js").status_code == 200
            listings = httpx.get(url + "/catalog/listings").json()
            assert listings and listings[0]["active"], listings
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log.read_text()
