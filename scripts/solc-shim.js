#!/usr/bin/env node
// A native-solc stand-in over solc-js, so brownie/py-solc-x compile with no
// binary download. It answers the two things py-solc-x asks of `solc`:
//   --version              -> "Version: <semver>+commit.<hash>..."
//   --standard-json [...]  -> Standard JSON in on stdin, Standard JSON out on stdout
// Other flags (--allow-paths X, --base-path X, --include-path X) are accepted;
// imports are resolved from the working directory and from those paths.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

const args = process.argv.slice(2);
const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (["--allow-paths", "--base-path", "--include-path"].includes(args[i]) && args[i + 1]) {
    for (const p of args[i + 1].split(",")) if (p) roots.push(path.resolve(p));
    i++;
  }
}

if (args.includes("--version")) {
  process.stdout.write(
    "solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n",
  );
  process.exitCode = 0;
} else if (args.includes("--standard-json")) {
  const input = fs.readFileSync(0, "utf8");
  const findImports = (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((r) => path.join(r, importPath));
    for (const c of candidates) {
      if (fs.existsSync(c) && fs.statSync(c).isFile()) {
        return { contents: fs.readFileSync(c, "utf8") };
      }
    }
    return { error: "File not found: " + importPath };
  };
  const output = solc.compile(input, { import: findImports });
  // process.exit() right after a large write truncates stdout past 64 KiB:
  // set exitCode and let Node drain the pipe.
  process.stdout.write(output);
  process.exitCode = 0;
} else {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exitCode = 2;
}
