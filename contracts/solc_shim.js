#!/usr/bin/env node
// A tiny stand-in for the solc binary, backed by the pinned npm package `solc` (solcjs).
// It speaks the two parts of solc's command line that py-solc-x uses:
//   --version          prints "solc, the solidity compiler ... Version: X"
//   --standard-json    reads Standard JSON on stdin, writes Standard JSON on stdout
// Imports are resolved against the project root and node_modules, so remappings such as
// "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/" work.
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const solc = require(path.join(root, "node_modules", "solc"));

function findImport(importPath) {
  for (const base of [root, path.join(root, "node_modules")]) {
    const candidate = path.resolve(base, importPath);
    if (!candidate.startsWith(root)) continue;
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: "File not found: " + importPath };
}

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
} else if (args.includes("--standard-json")) {
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: findImport }));
} else {
  process.stderr.write("usage: solc_shim.js --version | --standard-json < input.json\n");
  process.exit(2);
}
