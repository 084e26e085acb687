#!/usr/bin/env node
// `npm start` on a fresh clone: builds once (npm run build) when the compiled CLI or the filter
// module is missing or older than the sources, so `scripts/setup && npm start` just works.
//   node scripts/ensure-built.mjs [--check]   (--check: exit 1 when a build is needed, build nothing)
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const outputs = ["dist/control/src/cli/main.js", "filter/build/egret.wasm"].map((p) => join(root, p));

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith(".ts")) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

const stale = outputs.some((o) => !existsSync(o)) ||
  Math.min(...outputs.map((o) => statSync(o).mtimeMs)) < Math.max(newest(join(root, "control", "src")), newest(join(root, "filter", "assembly")));
if (stale && process.argv.includes("--check")) process.exit(1);
if (stale) {
  process.stderr.write("egret: building first (npm run build)…\n");
  const r = spawnSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
