// `egret demo` (npm start) works without root on a fresh build: real loopback connections through
// egret sidecar's proxy and egret.wasm, a readable table, exit 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../../../bin/egret.js", import.meta.url));

// Test that the demo prints one row per connection, the filter's decisions, and exits 0.
test("egret demo runs without root and shows the filter deciding real connections", () => {
  const r = spawnSync(process.execPath, [bin, "demo"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const rows = r.stdout.split("\n").filter((l) => /^\d+\s+(open|closed)\s/.test(l));
  assert.equal(rows.length, 4, r.stdout);
  // Fail-open rows reached the upstream and got bytes back; the fail-closed row never connected.
  for (const row of rows.slice(0, 3)) assert.match(row, /\s(\d+) B\s+connected\s/);
  assert.match(rows[2], /\s27 B\s+connected/, "the server-first banner came back");
  assert.match(rows[3], /\s0 B\s+never\s+filter$/);
  assert.match(r.stdout, /#4 {2}egret: deny 127\.0\.0\.1:\d+/);
  assert.match(r.stdout, /egret_connections_allow 3/);
});
