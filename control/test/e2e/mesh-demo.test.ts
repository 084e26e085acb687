// `egret demo` as a user runs it (npm start): as root it builds the mesh, prints a table of real
// connections with Egret's verdicts, exits 0 and leaves nothing behind; without root it says what
// it needs and replays the recorded story (corpus/demo) through the real filter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../src/mesh/exec.js";
import { existsSync } from "node:fs";
import { CLAIM_DIR, listNamespaces, meshUnavailableReason } from "../../src/mesh/netns.js";
import { missingComponents, repoAt } from "../../src/mesh/components.js";
import { DEMO_PREFIX } from "../../src/demo/index.js";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const egret = join(root, "bin/egret.js");
const missing = missingComponents(repoAt(root));
const skip = (await meshUnavailableReason(DEMO_PREFIX)) ?? (missing.length ? `the chain is incomplete: ${missing.join("; ")}` : undefined);
if (skip) console.log(`# mesh-demo: skipped — ${skip}`);

test("egret demo as root: a table of real connections and verdicts, then a clean exit", { skip, timeout: 180_000 }, async () => {
  const r = await run(process.execPath, [egret, "demo", "--duration", "12s", "--interval", "200ms"], { timeoutMs: 170_000 });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const rows = r.stdout.split("\n").filter((l) => /^\d\d:\d\d:\d\d /.test(l));
  assert.ok(rows.length >= 4, `expected connection rows:\n${r.stdout}`);
  assert.ok(rows.some((l) => /HTTPS api\.example\.test\s+200 OK\s+allow\s+allowed/.test(l)), `an allowed HTTPS call:\n${r.stdout}`);
  assert.ok(rows.some((l) => /\sdeny\s+denied-by-rule\s+shop\/checkout-egress#no-evil/.test(l)), `a denied name:\n${r.stdout}`);
  assert.ok(rows.some((l) => /\sdeny\s+sni-unverified/.test(l)), `the faked SNI:\n${r.stdout}`);
  assert.match(r.stdout, /mesh removed\./);
  // It prints the egret observe command to try (the same verdicts, live, from control's API).
  assert.match(r.stdout, /sudo ip netns exec egD\d+-node node \S+egret\.js observe --control \S+:15010 --token-file \S+ --follow/);
  // Namespaces of a demo prefix nobody holds any more would be leftovers (another demo running
  // at the same time holds its own claim).
  const prefixes = [...new Set((await run("ip", ["netns", "list"])).stdout.split("\n").map((l) => l.split("-")[0]!).filter((p) => p.startsWith(DEMO_PREFIX)))];
  for (const p of prefixes.filter((x) => !existsSync(join(CLAIM_DIR, `${x}.pid`)))) {
    assert.deepEqual(await listNamespaces(p), [], `namespaces left by the demo: ${p}`);
  }
});

// An unprivileged user must be able to read the tree (not so for a clone under /root).
const unreadable = (await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", egret])).code === 0
  ? undefined : `user nobody cannot read ${egret}`;
const skipNonRoot = (skip && !skip.startsWith("the chain") ? skip : undefined) ?? unreadable;

test("egret demo without root: says what it needs, then replays the recorded mesh with real verdicts", { skip: skipNonRoot, timeout: 120_000 }, async () => {
  const r = await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, egret, "demo"], { timeoutMs: 110_000 });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /needs root/);
  assert.match(r.stdout, /sudo scripts\/setup && sudo npm start/);
  assert.match(r.stdout, /You are not root\./);
  assert.match(r.stdout, /^REPLAY — not live/m);
  const rows = r.stdout.split("\n").filter((l) => /^\d\d:\d\d:\d\d /.test(l));
  assert.ok(rows.some((l) => /HTTPS api\.example\.test\s+200 OK\s+allow\s+allowed/.test(l)), `an allowed HTTPS call:\n${r.stdout}`);
  assert.ok(rows.some((l) => /\sdeny\s+sni-unverified/.test(l)), `the faked SNI:\n${r.stdout}`);
  assert.ok(rows.some((l) => /\sdeny\s+unattributed/.test(l)), `the never-resolved address:\n${r.stdout}`);
  assert.ok(rows.some((l) => /\swould-deny\s+default-deny/.test(l)), `the Monitor would-deny:\n${r.stdout}`);
});
