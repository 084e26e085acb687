#!/usr/bin/env node
// Builds the filter:
//   filter/build/egret.wasm        release, optimized (what Envoy loads)
//   filter/build/egret.debug.wasm  debug build with source map
//   filter/build/test/<name>.wasm  one module per filter/test/*.ts entry: pure-logic unit-test
//                                  harnesses (no proxy-wasm ABI), run from control/test/unit.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, basename } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(root, "filter", "build", "test"), { recursive: true });
const asc = join(root, "node_modules", "assemblyscript", "bin", "asc.js");
function run(args, what) {
  const r = spawnSync(process.execPath, [asc, ...args], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) { console.error(`build-filter: asc failed for ${what}`); process.exit(r.status ?? 1); }
}
for (const target of ["release", "debug"]) run(["--config", "asconfig.json", "--target", target], `egret.wasm (${target})`);

const testDir = join(root, "filter", "test");
if (existsSync(testDir)) {
  for (const f of readdirSync(testDir).filter((f) => f.endsWith(".ts")).sort()) {
    const name = basename(f, ".ts");
    run([join("filter", "test", f), join("filter", "assembly", "abi", "abort.ts"), "--config", join("filter", "asconfig.test.json"), "--target", "debug",
      "--outFile", join("filter", "build", "test", `${name}.wasm`), "--textFile", join("filter", "build", "test", `${name}.wat`)], `filter/test/${f}`);
  }
}
