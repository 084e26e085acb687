// `npm run bench`: runs every case in ./cases, prints each figure beside its baseline and target,
// writes bench/results.json and docs/benchmarks.md.
//   node dist/bench/run.js [--quick] [--only SUBSTRING [--merge]]
// --merge keeps the other cases of the existing bench/results.json (each case records when, and
// under which load, it was measured), so one case can be re-measured without a full run.
import { readdirSync, writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cpus, totalmem, platform, release, loadavg } from "node:os";
import { fmt, type BenchCase, type Figure } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const onlyIdx = args.indexOf("--only");
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;
const merge = args.includes("--merge");

interface CaseResult { case: string; figures?: Figure[]; skipped?: string; error?: string; seconds: number; measuredAt?: string; loadAverage1m?: number }

async function main(): Promise<number> {
  const dir = join(here, "cases");
  const files = readdirSync(dir).filter((f) => f.endsWith(".js")).sort();
  const results: CaseResult[] = [];
  const started = Date.now();
  // The machine may be shared: its load says how much the absolute numbers are worth.
  const loadAtStart = loadavg().map((l) => +l.toFixed(2));
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { benchCase?: BenchCase };
    const c = mod.benchCase;
    if (!c || (only && !c.name.includes(only) && !f.includes(only))) continue;
    process.stdout.write(`\n## ${c.name}\n`);
    const t0 = Date.now();
    try {
      const out = await c.run({ scale: quick ? 0.1 : 1, log: (m) => process.stdout.write(`   ${m}\n`) });
      const seconds = (Date.now() - t0) / 1000;
      if (typeof out === "string") {
        process.stdout.write(`   skipped: ${out}\n`);
        results.push({ case: c.name, skipped: out, seconds });
      } else {
        for (const fig of out) process.stdout.write(`   ${line(fig)}\n`);
        results.push({ case: c.name, figures: out, seconds });
      }
    } catch (err) {
      const e = err as Error;
      process.stdout.write(`   ERROR: ${e.stack ?? e.message}\n`);
      results.push({ case: c.name, error: e.message, seconds: (Date.now() - t0) / 1000 });
    }
  }
  for (const r of results) { r.measuredAt = new Date().toISOString(); r.loadAverage1m = +loadavg()[0]!.toFixed(2); }
  if (merge) mergeEarlier(results);
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string };
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? "unknown", memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), os: `${platform()} ${release()}`, node: process.version, loadAverage1m5m15mAtStart: loadAtStart, loadAverage1m5m15mAtEnd: loadavg().map((l) => +l.toFixed(2)) };
  const doc = { date: new Date().toISOString(), version: pkg.version, quick, merged: merge, machine, totalSeconds: (Date.now() - started) / 1000, results };
  writeFileSync(join(repo, "bench", "results.json"), JSON.stringify(doc, null, 2) + "\n");
  mkdirSync(join(repo, "docs"), { recursive: true });
  writeFileSync(join(repo, "docs", "benchmarks.md"), markdown(doc));
  process.stdout.write(`\nwrote bench/results.json and docs/benchmarks.md (${doc.totalSeconds.toFixed(0)} s)\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

/** --merge: the cases not run now keep their earlier results, in case-file order. */
function mergeEarlier(results: CaseResult[]): void {
  let earlier: CaseResult[] = [];
  try { earlier = (JSON.parse(readFileSync(join(repo, "bench", "results.json"), "utf8")) as { results: CaseResult[] }).results; } catch { return; }
  const now = new Set(results.map((r) => r.case));
  const kept = earlier.filter((r) => !now.has(r.case));
  const all = [...kept, ...results];
  const rank = (r: CaseResult) => { const i = earlier.findIndex((e) => e.case === r.case); return i >= 0 ? i : earlier.length + results.indexOf(r); };
  all.sort((a, b) => rank(a) - rank(b));
  results.splice(0, results.length, ...all);
}

function line(f: Figure): string {
  const base = f.baseline ? ` | baseline ${f.baseline.name}: ${fmt(f.baseline.value, f.baseline.unit)}` : "";
  const ratio = f.baseline && f.baseline.unit === f.unit && f.baseline.value ? ` (×${(f.value / f.baseline.value).toFixed(2)})` : "";
  const target = f.target ? ` | target ${f.target}${f.meetsTarget === undefined ? "" : f.meetsTarget ? " ✓" : " ✗"}` : "";
  return `${f.name}: ${fmt(f.value, f.unit)}${base}${ratio}${target}`;
}

function markdown(doc: { date: string; machine: Record<string, unknown>; quick: boolean; merged?: boolean; totalSeconds: number; results: CaseResult[] }): string {
  const m = doc.machine;
  const rows: string[] = [];
  const notes: string[] = [];
  const separately = doc.merged ? doc.results.filter((r) => r.measuredAt) : [];
  for (const r of doc.results) {
    if (r.skipped || r.error) {
      rows.push(`| ${r.case} | ${r.skipped ? "skipped: " + r.skipped : "error: " + r.error} | | | | |`);
      continue;
    }
    for (const f of r.figures ?? []) {
      const ratio = f.baseline && f.baseline.unit === f.unit && f.baseline.value ? `×${(f.value / f.baseline.value).toFixed(2)}` : "";
      const extra = f.extra ? Object.entries(f.extra).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(2) : v}`).join(", ") : "";
      if (f.note) notes.push(`- **${f.name}**: ${f.note}`);
      rows.push(`| ${f.name} | ${fmt(f.value, f.unit)} | ${f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.value, f.baseline.unit)} ${ratio}` : ""} | ${f.target ?? ""}${f.meetsTarget === undefined ? "" : f.meetsTarget ? " ✓" : " ✗"} | ${extra} |`);
    }
  }
  return `# Benchmarks

${doc.merged ? `Updated on ${doc.date} by re-measuring some cases (\`--only … --merge\`, listed under the table); the other cases are from an earlier full run.` : `Generated by \`npm run bench\` (${doc.quick ? "quick mode" : "full run"}) on ${doc.date}.`}
Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}. Total ${doc.totalSeconds.toFixed(0)} s.
Load average (1/5/15 min) at start ${String(m.loadAverage1m5m15mAtStart)}, at end ${String(m.loadAverage1m5m15mAtEnd)}: the
machine was shared with other work, so absolute figures are pessimistic; ratios to baselines
measured in the same run hold better.

Every figure is measured beside its baseline in the same run; read the ratio, not the absolute
number, when comparing machines. Raw data: \`bench/results.json\`.

| measure | result | baseline (same run) | target | details |
| --- | --- | --- | --- | --- |
${rows.join("\n")}
${separately.length ? `\nMeasured separately (\`--only … --merge\`): ${separately.map((r) => `${r.case} (${r.measuredAt}, load ${r.loadAverage1m})`).join("; ")}.\n` : ""}${notes.length ? `\n## Targets not met\n\n${notes.join("\n")}\n` : ""}
Reproduce: \`npm run bench\` (or \`node dist/bench/run.js --only NAME\` after \`npm run build\`).
`;
}

process.exitCode = await main();
