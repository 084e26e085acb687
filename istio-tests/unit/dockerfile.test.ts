// Static checks of the image definition (no Docker engine here): the runtime stage is slim and
// non-root, and carries every file the code resolves relative to itself at run time.
import { strict as assert } from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const text = readFileSync(join(ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const stages: { from: string; name?: string; lines: string[] }[] = [];
for (const l of lines) {
  const m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l);
  if (m) stages.push({ from: m[1], name: m[2], lines: [] });
  else stages.at(-1)?.lines.push(l);
}
const runtime = stages.at(-1)!;

test("two stages: a build stage and a node:20 slim runtime", () => {
  assert.equal(stages.length, 2);
  assert.match(stages[0].from, /^node:20(-bookworm)?$/);
  assert.match(runtime.from, /^node:20-[a-z]+-slim$/);
  assert.ok(stages[0].lines.some((l) => /npm ci/.test(l)) && stages[0].lines.some((l) => /npm run build/.test(l)));
  assert.ok(stages[0].lines.some((l) => /test -e dist\/native\/packet_ring\.node/.test(l)), "the build fails when the agent's capture addon was not built");
  assert.ok(!runtime.lines.some((l) => /\b(libpcap|iproute2)\b/.test(l)), "the agent needs no libpcap and no ss: its capture and drop counters are the addon's");
});

test("the runtime stage runs as a non-root user and starts the egret command", () => {
  const user = runtime.lines.filter((l) => /^USER\s/.test(l)).at(-1);
  assert.ok(user, "USER is set");
  assert.doesNotMatch(user, /^USER\s+(0|root)\b/);
  const entry = runtime.lines.find((l) => /^ENTRYPOINT\s/.test(l))!;
  assert.deepEqual(JSON.parse(entry.replace(/^ENTRYPOINT\s+/, "")), ["/usr/bin/tini", "--", "node", "/opt/egret/bin/egret.js"]);
});

test("the runtime stage copies what the code loads relative to itself", () => {
  const copied = runtime.lines.filter((l) => /^COPY\s+--from=build/.test(l)).map((l) => l.split(/\s+/).slice(2, -1)).flat();
  const needed = [
    "/src/dist/control",            // the compiled CLI, control, agent
    "/src/dist/native",             // the agent's capture addon (packet_ring.node), SO_ORIGINAL_DST
    "/src/proto",                   // control/src/proto loads the .proto files at run time
    "/src/manifests",               // control/src/policy/schema.ts reads manifests/crds/; `egret manifests`
    "/src/filter/build/egret.wasm", // served to istio-agent, run by the CLI tools
    "/src/node_modules", "/src/package.json", "/src/bin",
  ];
  for (const n of needed) assert.ok(copied.includes(n), `runtime copies ${n}`);
  const wasmServed = readFileSync(join(ROOT, "manifests", "control", "control.yaml"), "utf8").match(/--wasm=(\S+)/)?.[1];
  assert.equal(wasmServed, "/opt/egret/filter/build/egret.wasm", "the Deployment serves the module the image carries");
});

test(".dockerignore keeps host builds out of the image", () => {
  const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").map((l) => l.trim());
  for (const p of ["node_modules", "dist", "filter/build"]) assert.ok(ignored.includes(p), p);
});

test("everything control/src imports is a production dependency (the image prunes dev dependencies)", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string>; optionalDependencies?: Record<string, string> };
  const prod = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {})]);
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);
  const used = new Map<string, string>();
  for (const f of walk(join(ROOT, "control", "src"))) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/(?:from\s+|import\(\s*|require\(\s*)"([^"]+)"/g)) {
      const spec = m[1];
      if (spec.startsWith(".") || spec.startsWith("node:") || builtinModules.includes(spec.split("/")[0])) continue;
      const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
      used.set(name, f.slice(ROOT.length));
    }
  }
  assert.ok(used.size >= 5);
  for (const [name, file] of used) assert.ok(prod.has(name), `${name} (imported by ${file}) must be in dependencies, not devDependencies`);
});
