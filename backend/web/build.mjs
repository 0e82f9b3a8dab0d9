// Build kameng's web front-end into backend/web/dist (committed, so running needs no build).
//
//   npm run build:web            build dist/ and write dist/BUILD.json
//   npm run build:web -- --check exit 1 when dist/ is stale against the sources
//
// dist/BUILD.json records a digest of every input (sources, the escrow ABI, this script and the
// exact versions of the npm packages bundled) and of every output, computed the same way as
// backend/web/__init__.py does, so a Python test can tell a stale or hand-edited dist without Node.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = dirname(fileURLToPath(import.meta.url));
const ROOT = join(WEB, "..", "..");
const DIST = join(WEB, "dist");
const BUNDLED = ["esbuild", "viem", "libsodium-wrappers", "libsodium"];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");

/** The files whose content decides the build, as repository-relative POSIX paths. */
export function inputFiles() {
  const files = [
    ...walk(join(WEB, "src")),
    join(WEB, "index.html"),
    join(WEB, "styles.css"),
    join(WEB, "build.mjs"),
    join(ROOT, "contracts", "artifacts", "CodeEscrow.json"),
  ];
  return files.map((f) => relative(ROOT, f).split("\\").join("/")).sort();
}

/** The versions of the bundled npm packages, from package-lock.json. */
export function bundledVersions() {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8"));
  return Object.fromEntries(BUNDLED.map((name) => [name, lock.packages[`node_modules/${name}`]?.version ?? null]));
}

/** sha256 over "path\0sha256(content)\n" lines in path order, then the bundled versions. */
export function sourceDigest() {
  const h = createHash("sha256");
  for (const path of inputFiles()) {
    h.update(`${path}\0${sha256(readFileSync(join(ROOT, path)))}\n`);
  }
  for (const [name, version] of Object.entries(bundledVersions())) {
    h.update(`npm:${name}\0${version}\n`);
  }
  return h.digest("hex");
}

function outputDigests() {
  return Object.fromEntries(
    walk(DIST)
      .map((f) => relative(DIST, f).split("\\").join("/"))
      .filter((f) => f !== "BUILD.json")
      .sort()
      .map((f) => [f, sha256(readFileSync(join(DIST, f)))]),
  );
}

/** The module chain.js imports the escrow's storage layout from (see `escrowLayoutPlugin`). */
const LAYOUT_MODULE = "virtual:escrow-storage-layout";

/**
 * Serves `import layout from "virtual:escrow-storage-layout"`: the escrow artifact's
 * storageLayout cut down by src/escrow-layout.mjs to the variables and types storage.js's
 * decoders read, so the web answers the views the escrow replaced by `extsload` without a
 * server and without carrying the whole artifact.
 */
async function escrowLayoutPlugin() {
  const { compactLayout } = await import("./src/escrow-layout.mjs");
  const artifact = JSON.parse(readFileSync(join(ROOT, "contracts", "artifacts", "CodeEscrow.json"), "utf8"));
  if (!artifact.storageLayout) {
    throw new Error("contracts/artifacts/CodeEscrow.json has no storageLayout: run `kameng compile --force`");
  }
  const contents = JSON.stringify(compactLayout(artifact.storageLayout));
  return {
    name: "escrow-storage-layout",
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${LAYOUT_MODULE}$`) }, (args) => ({
        path: args.path,
        namespace: "kameng",
      }));
      build.onLoad({ filter: /.*/, namespace: "kameng" }, () => ({ contents, loader: "json" }));
    },
  };
}

const APP_SCRIPT = '<script type="module" src="app.js"></script>';

/**
 * index.html with a <link rel="modulepreload"> for each chunk app.js imports statically, so the
 * browser fetches them beside app.js instead of after it has parsed app.js (one round trip less
 * on a phone's slow link). Chunks imported on demand (the crypto library) are not preloaded.
 */
function withModulePreloads(html, metafile) {
  if (!html.includes(APP_SCRIPT)) throw new Error(`index.html has no ${APP_SCRIPT}`);
  const app = Object.entries(metafile.outputs).find(([path]) => path.endsWith("/dist/app.js"));
  const chunks = app[1].imports
    .filter((i) => i.kind === "import-statement" && !i.external)
    // metafile paths are relative to the working directory
    .map((i) => relative(DIST, resolve(i.path)).split("\\").join("/"));
  const links = chunks.map((href) => `\n    <link rel="modulepreload" href="${href}" />`).join("");
  return html.replace(APP_SCRIPT, APP_SCRIPT + links);
}

async function build() {
  const esbuild = await import("esbuild");
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });
  const { metafile } = await esbuild.build({
    // app.js, and the crypto library in a chunk of its own that only pages needing it load.
    entryPoints: { app: join(WEB, "src", "main.js") },
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    format: "esm",
    target: ["es2022"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    outdir: DIST,
    logLevel: "warning",
    // libsodium's wasm loader mentions Node built-ins behind runtime checks; a browser never takes
    // that path.
    external: ["fs", "path", "crypto", "url", "module", "worker_threads"],
    platform: "browser",
    plugins: [await escrowLayoutPlugin()],
    metafile: true,
  });
  writeFileSync(join(DIST, "index.html"), withModulePreloads(readFileSync(join(WEB, "index.html"), "utf8"), metafile));
  copyFileSync(join(WEB, "styles.css"), join(DIST, "styles.css"));
  const record = {
    note: "Generated by `npm run build:web`; tests/integration/test_web_dist.py checks it.",
    source_digest: sourceDigest(),
    inputs: inputFiles(),
    bundled: bundledVersions(),
    outputs: outputDigests(),
  };
  writeFileSync(join(DIST, "BUILD.json"), JSON.stringify(record, null, 2) + "\n");
  const size = statSync(join(DIST, "app.js")).size;
  console.log(
    `built backend/web/dist (app.js ${(size / 1024).toFixed(0)} KiB), digest ${record.source_digest.slice(0, 12)}`,
  );
}

function check() {
  let record;
  try {
    record = JSON.parse(readFileSync(join(DIST, "BUILD.json"), "utf8"));
  } catch {
    console.error("backend/web/dist/BUILD.json is missing: run `npm run build:web`");
    return 1;
  }
  if (record.source_digest !== sourceDigest()) {
    console.error("backend/web/dist is stale against its sources: run `npm run build:web`");
    return 1;
  }
  if (JSON.stringify(record.outputs) !== JSON.stringify(outputDigests())) {
    console.error("backend/web/dist was edited by hand: run `npm run build:web`");
    return 1;
  }
  console.log("backend/web/dist is up to date");
  return 0;
}

if (process.argv.includes("--check")) {
  process.exit(check());
} else {
  await build();
}
