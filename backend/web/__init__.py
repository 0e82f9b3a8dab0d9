"""kameng's web front-end: storefront, buyer pages, supplier dashboard and arbiter console.

The sources live in ``backend/web/src`` and are bundled by ``npm run build:web`` into
``backend/web/dist``, which is committed so that running the site needs no Node.js. The API
serves ``dist`` at ``/`` with `mount_web`, after its own routes (the pages route with ``#/...``
fragments, so no page path can shadow an API path).

``dist/BUILD.json`` records a digest of every build input; `stale_reason` recomputes it the way
``build.mjs`` does, so a test fails when someone edits a source and forgets to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.responses import Response
    from starlette.types import Scope

WEB = Path(__file__).resolve().parent
ROOT = WEB.parent.parent
DIST = WEB / "dist"
#: npm packages whose code ends up in the bundle (their versions are build inputs).
BUNDLED = ("esbuild", "viem", "libsodium-wrappers", "libsodium")


def page_policy(index_html: str) -> str:
    """The Content-Security-Policy header of the pages: the policy of ``index.html``'s
    ``<meta>`` tag (one source of truth) plus ``frame-ancestors 'none'``, which a ``<meta>`` tag
    cannot carry: no other site may frame the pages (the arbiter console, a wallet prompt).

    Raises:
        ValueError: ``index.html`` has no Content-Security-Policy meta tag.
    """
    found = re.search(
        r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', index_html, re.IGNORECASE
    )
    if found is None:
        raise ValueError("index.html has no Content-Security-Policy <meta> tag")
    return found.group(1).rstrip("; ") + "; frame-ancestors 'none'"


class _WebFiles(StaticFiles):
    """Static files that are always revalidated, so a rebuilt front-end shows at once, sent with
    the security headers a page needs (issue 19: the pages could be framed by another site)."""

    def __init__(self, *, directory: Path, html: bool) -> None:
        super().__init__(directory=directory, html=html)
        self.policy = page_policy((directory / "index.html").read_text(encoding="utf-8"))

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers["Content-Security-Policy"] = self.policy
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def mount_web(app: FastAPI, path: str = "/") -> None:
    """Serve the built front-end at `path`. Call it after every API route is added.

    Raises:
        FileNotFoundError: ``backend/web/dist`` has not been built.
    """
    if not (DIST / "index.html").is_file():
        raise FileNotFoundError(f"{DIST / 'index.html'} is missing; run `npm run build:web`")
    # Compressed for clients that accept it (the bundle is about a megabyte, a third of it
    # gzipped): a phone on a slow link waits for a third of the bytes.
    files = GZipMiddleware(_WebFiles(directory=DIST, html=True), minimum_size=1024)
    app.mount(path, files, name="web")


def _walk(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def input_files(root: Path = ROOT) -> list[str]:
    """The build's inputs as repository-relative POSIX paths (as ``build.mjs`` lists them)."""
    web = root / "backend" / "web"
    files = [
        *_walk(web / "src"),
        web / "index.html",
        web / "styles.css",
        web / "build.mjs",
        root / "contracts" / "artifacts" / "CodeEscrow.json",
    ]
    return sorted(p.relative_to(root).as_posix() for p in files)


def bundled_versions(root: Path = ROOT) -> dict[str, str | None]:
    """Versions of the bundled npm packages, from package-lock.json."""
    lock = json.loads((root / "package-lock.json").read_text())
    packages = lock.get("packages", {})
    return {name: packages.get(f"node_modules/{name}", {}).get("version") for name in BUNDLED}


def source_digest(root: Path = ROOT) -> str:
    """The digest ``build.mjs`` writes to ``dist/BUILD.json``."""
    h = hashlib.sha256()
    for rel in input_files(root):
        content = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        h.update(f"{rel}\0{content}\n".encode())
    for name, version in bundled_versions(root).items():
        h.update(f"npm:{name}\0{'null' if version is None else version}\n".encode())
    return h.hexdigest()


def output_digests(dist: Path = DIST) -> dict[str, str]:
    """sha256 of every file in ``dist`` except BUILD.json, by relative path."""
    return {
        p.relative_to(dist).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in _walk(dist)
        if p.name != "BUILD.json"
    }


def stale_reason(root: Path = ROOT) -> str | None:
    """Why ``backend/web/dist`` under `root` does not match the sources, or None when it does."""
    dist = root / "backend" / "web" / "dist"
    record_path = dist / "BUILD.json"
    if not record_path.is_file():
        return "backend/web/dist/BUILD.json is missing: run `npm run build:web`"
    record = json.loads(record_path.read_text())
    if record.get("source_digest") != source_digest(root):
        return "backend/web/dist is stale against its sources: run `npm run build:web`"
    if record.get("outputs") != output_digests(dist):
        return "backend/web/dist was edited by hand: run `npm run build:web`"
    return None


__all__ = ["DIST", "mount_web", "source_digest", "stale_reason"]
