#!/usr/bin/env node
// Runs the end-to-end tier several times in a row and prints, per run, its result, test counts,
// duration and the 1-minute load average sampled while it ran — the figures docs/testing.md keeps.
//   node scripts/e2e-repeat.mjs [--runs N] [--busy] [--grep SUBSTRING] [--log-dir DIR]
// --busy adds one busy loop per core for the whole time (load on an otherwise idle machine).
// Exit code: 0 when every run passed, 1 otherwise. Needs root (the tier's namespaces); build first.
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const runs = Number(opt("--runs") ?? 5);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`--runs "${opt("--runs")}": a whole number ≥ 1`);
  process.exit(2);
}
const grep = opt("--grep");
const logDir = opt("--log-dir") ?? join(tmpdir(), `egret-e2e-repeat-${process.pid}`);
mkdirSync(logDir, { recursive: true });

const load1 = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);

/** One run of the tier: its exit code and summary line, with load samples every 5 s. */
function runOnce(n) {
  return new Promise((resolve) => {
    const log = join(logDir, `run-${n}.log`);
    const out = createWriteStream(log);
    const samples = [load1()];
    const sampler = setInterval(() => samples.push(load1()), 5000);
    const started = Date.now();
    const child = spawn(process.execPath, [join(root, "scripts/run-tests.mjs"), "--tier", "e2e", ...(grep ? ["--grep", grep] : [])], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    for (const s of [child.stdout, child.stderr]) s.on("data", (d) => { out.write(d); text += d.toString(); if (text.length > 1 << 20) text = text.slice(-(1 << 19)); });
    child.on("close", (code) => {
      clearInterval(sampler);
      out.end();
      const m = /^(\d+) passed, (\d+) failed, (\d+) skipped, (\d+) todo$/m.exec(text);
      const failed = [...text.matchAll(/^✖ (.*?)(?: \([\d.]+m?s\))?$/gm)].map((x) => x[1]).filter((t) => t !== "failing tests:");
      resolve({
        n, code, log, seconds: Math.round((Date.now() - started) / 1000),
        counts: m ? { passed: +m[1], failed: +m[2], skipped: +m[3], todo: +m[4] } : undefined,
        failed: [...new Set(failed)],
        load: { mean: samples.reduce((a, b) => a + b, 0) / samples.length, min: Math.min(...samples), max: Math.max(...samples) },
      });
    });
  });
}

// Busy loops: children of this script only, stopped by their own pids at the end.
const busy = args.includes("--busy") ? cpus().map(() => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" })) : [];
const stopBusy = () => { for (const b of busy) if (b.exitCode === null) b.kill("SIGKILL"); };
process.on("exit", stopBusy);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

console.log(`e2e tier × ${runs} on ${cpus().length} cores${busy.length ? ` with ${busy.length} busy loops` : ""}; logs in ${logDir}`);
console.log("run  result  passed failed skipped todo  duration  load1 mean (min–max)");
const results = [];
for (let n = 1; n <= runs; n++) {
  const r = await runOnce(n);
  results.push(r);
  const c = r.counts ?? { passed: "?", failed: "?", skipped: "?", todo: "?" };
  const ok = r.code === 0 && r.counts?.failed === 0;
  console.log(`${String(n).padStart(3)}  ${(ok ? "pass" : "FAIL").padEnd(6)}  ${String(c.passed).padStart(6)} ${String(c.failed).padStart(6)} ${String(c.skipped).padStart(7)} ${String(c.todo).padStart(4)}  ${String(r.seconds).padStart(6)} s  ${r.load.mean.toFixed(1)} (${r.load.min.toFixed(1)}–${r.load.max.toFixed(1)})`);
  for (const f of r.failed) console.log(`       failed: ${f}  (${r.log})`);
}
stopBusy();
const bad = results.filter((r) => r.code !== 0 || r.counts?.failed !== 0);
console.log(bad.length === 0 ? `${runs} of ${runs} runs passed, 0 failures.` : `${bad.length} of ${runs} runs failed.`);
process.exit(bad.length === 0 ? 0 : 1);
