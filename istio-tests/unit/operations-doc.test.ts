// docs/operations.md must stay true: every metric it names exists in the code that defines it,
// every `egret manifests` option it lists exists, every repository path it names exists.
import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const doc = readFileSync(join(ROOT, "docs", "operations.md"), "utf8");
const codeTokens = (() => {
  const files = [join(ROOT, "filter/assembly/egress/metrics.ts"), join(ROOT, "control/src/control/metrics.ts"),
    ...readdirSync(join(ROOT, "control/src/agent")).filter((f) => f.endsWith(".ts")).map((f) => join(ROOT, "control/src/agent", f))];
  return new Set(files.flatMap((f) => [...readFileSync(f, "utf8").matchAll(/"([a-z0-9_]+)"/g)].map((m) => m[1])));
})();

/** `egret_lookup_{found,not_found}` → egret_lookup_found, egret_lookup_not_found. */
function expand(name: string): string[] {
  const m = /^(.*)\{([^}]+)\}(.*)$/.exec(name);
  return m ? m[2].split(",").flatMap((alt) => expand(`${m[1]}${alt}${m[3]}`)) : [name];
}

function defined(name: string): boolean {
  if (codeTokens.has(name)) return true;
  // Families built by concatenation: prefix + a name from a list in the same file.
  for (const prefix of ["egret_connections_", "egret_decisions_"]) {
    if (name.startsWith(prefix) && codeTokens.has(prefix) && codeTokens.has(name.slice(prefix.length))) return true;
  }
  // Prometheus suffixes of histograms.
  return /_bucket$/.test(name) && codeTokens.has(name.replace(/_bucket$/, ""));
}

test("every metric named in docs/operations.md is defined by the filter, control or agent", () => {
  const names = new Set<string>();
  // A {a,b} group right after "_" is an alternation; after a letter it is a Prometheus label set.
  // Family names written with * or <reason> are described, not named.
  for (const m of doc.matchAll(/\b(egret_[a-z0-9_]*?(?:_\{[a-z_,]+\}[a-z0-9_]*)?)(?=[^a-z0-9_{*<]|\{[a-z])/g)) {
    if (m[1].endsWith("_")) continue;
    for (const n of expand(m[1])) names.add(n);
  }
  assert.ok(names.size > 40, `found ${names.size} metric names`);
  const missing = [...names].filter((n) => !defined(n));
  assert.deepEqual(missing, []);
  for (const reason of ["allowed", "denied_by_rule", "default_deny", "lookup_timeout", "control_unavailable"]) {
    assert.ok(doc.includes(`\`${reason}\``), `reason ${reason} listed`);
  }
});

test("the Grafana dashboard parses and queries only metrics that exist", () => {
  const dash = JSON.parse(readFileSync(join(ROOT, "docs", "dashboards", "egret-grafana.json"), "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
  assert.ok(dash.panels.length >= 8);
  for (const p of dash.panels) {
    for (const t of p.targets) {
      const names = [...t.expr.matchAll(/\b(egret_[a-z0-9_]+)/g)].map((m) => m[1]);
      assert.ok(names.length > 0, p.title);
      for (const n of names) assert.ok(defined(n), `${p.title}: ${n}`);
    }
  }
});

test("every egret manifests option in the install table exists", () => {
  const help = spawnSync(process.execPath, [join(ROOT, "bin", "egret.js"), "manifests", "--help"], { encoding: "utf8" }).stdout;
  const table = doc.split("Options (`egret manifests --help`):")[1]!.split("\n\n")[1]!;
  const options = [...table.matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]);
  assert.ok(options.length >= 9);
  for (const o of options) assert.ok(help.includes(o), `egret manifests ${o}`);
});

test("every repository path docs/operations.md names exists", () => {
  const paths = new Set([...doc.matchAll(/(?:\.\.\/)?((?:manifests|control|filter|istio-tests|docs)\/[A-Za-z0-9_./-]+[A-Za-z0-9_])/g)].map((m) => m[1]));
  assert.ok(paths.size >= 6);
  for (const p of paths) assert.ok(existsSync(join(ROOT, p)), p);
});
