#!/usr/bin/env node
// Entry point of the `egret` command: runs the compiled CLI (npm run build).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const main = join(root, "dist", "control", "src", "cli", "main.js");
if (!existsSync(main)) {
  process.stderr.write("egret: not built yet. Run `npm run build` in " + root + " first.\n");
  process.exit(2);
}
const { run } = await import(main);
process.exitCode = await run(process.argv.slice(2));
