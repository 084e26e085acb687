#!/usr/bin/env node
// Runs the compiled test files (dist/**/*.test.js) with node's test runner.
// Tiers follow the folder a test lives in: .../unit/, .../host/, .../e2e/ (see control/test/README.md).
//   node scripts/run-tests.mjs [--tier unit|host|e2e|all] [--grep SUBSTRING]
// Non-e2e tests run in parallel (one process per file); e2e tests share network namespaces and
// real servers, so they run one file at a time. A last line sums both runs, then every skipped
// and todo test is listed with its reason (from the TAP stream), so nothing is skipped silently.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, mkdtempSync } from "node:fs";
import { join, relative } from "node:path";
import { tmpdir, cpus } from "node:os";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const tier = opt("--tier") ?? "all";
const grep = opt("--grep");

function walk(dir, out = []) {
  let entries = [];
  try { entries = readdirSync(dir); } catch { return out; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (e.endsWith(".test.js")) out.push(p);
  }
  return out;
}
let files = walk(join(root, "dist")).sort();
if (grep) files = files.filter((f) => f.includes(grep));
const isE2e = (f) => f.split("/").includes("e2e");
const groups = [
  { name: "unit+host", files: files.filter((f) => !isE2e(f) && (tier === "all" || f.split("/").includes(tier))), concurrency: Math.max(2, cpus().length) },
  { name: "e2e", files: files.filter((f) => isE2e(f) && (tier === "all" || tier === "e2e")), concurrency: 1 },
];
const total = { pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
/** @type {{ kind: string, name: string, reason: string }[]} */
const notes = [];

/** Every "ok N - name # SKIP reason" / "# TODO reason" line of a TAP stream (any depth). */
function directives(tap) {
  const out = [];
  for (const line of tap.split("\n")) {
    const m = /^\s*(?:not )?ok \d+ - (.*?) # (SKIP|TODO)\b ?(.*)$/.exec(line);
    if (m) out.push({ kind: m[2], name: m[1].replace(/\\#/g, "#"), reason: m[3].trim() });
  }
  return out;
}
const tmp = mkdtempSync(join(tmpdir(), "egret-tests-"));
let status = 0;
for (const g of groups) {
  if (g.files.length === 0) continue;
  console.log(`\n== ${g.name}: ${g.files.length} test files ==`);
  const tap = join(tmp, `${g.name}.tap`);
  const r = spawnSync(process.execPath, [
    "--test", `--test-concurrency=${g.concurrency}`,
    "--test-reporter=spec", "--test-reporter-destination=stdout",
    "--test-reporter=tap", `--test-reporter-destination=${tap}`,
    ...g.files.map((f) => relative(root, f)),
  ], { cwd: root, stdio: "inherit", env: { ...process.env, EGRET_TEST: "1" } });
  if (r.status !== 0) status = r.status ?? 1;
  let text = "";
  try { text = readFileSync(tap, "utf8"); } catch { /* runner died before writing */ }
  for (const k of Object.keys(total)) {
    const m = text.match(new RegExp(`^# ${k} (\\d+)$`, "m"));
    if (m) total[k] += Number(m[1]);
  }
  notes.push(...directives(text, g.name));
}
if (total.fail > 0 && status === 0) status = 1;
console.log(`\n${total.pass} passed, ${total.fail} failed, ${total.skipped} skipped, ${total.todo} todo`);
for (const kind of ["SKIP", "TODO"]) {
  const list = notes.filter((n) => n.kind === kind);
  if (list.length === 0) continue;
  console.log(`\n${kind === "SKIP" ? "skipped" : "todo (known issues)"}: ${list.length}`);
  const byReason = new Map();
  for (const n of list) byReason.set(n.reason, [...(byReason.get(n.reason) ?? []), n.name]);
  for (const [reason, names] of byReason) console.log(`  ${reason || "(no reason given)"} — ${names.length === 1 ? names[0] : `${names.length} tests: ${names.slice(0, 3).join("; ")}${names.length > 3 ? "; …" : ""}`}`);
}
process.exit(status);
