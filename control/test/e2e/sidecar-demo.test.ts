// The loopback demo (control/src/sidecar/demo.ts; formerly what `egret demo` showed where the mesh demo
// cannot run) works without root on a fresh build: real loopback connections through egret
// sidecar's proxy and egret.wasm, a readable table, exit code 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { runLocalDemo } from "../../src/sidecar/demo.js";

// Test that the demo prints one row per connection, the filter's decisions, and returns 0.
test("loopback demo shows egret.wasm deciding real connections", async () => {
  let text = "";
  const out = new Writable({ write(chunk, _enc, cb) { text += chunk.toString(); cb(); } });
  const code = await runLocalDemo(out);
  assert.equal(code, 0, text);
  const rows = text.split("\n").filter((l) => /^\d+\s+(open|closed)\s/.test(l));
  assert.equal(rows.length, 4, text);
  // Fail-open rows reached the upstream and got bytes back; the fail-closed row never connected.
  for (const row of rows.slice(0, 3)) assert.match(row, /\s(\d+) B\s+connected\s/);
  assert.match(rows[2], /\s27 B\s+connected/, "the server-first banner came back");
  assert.match(rows[3], /\s0 B\s+never\s+filter$/);
  assert.match(text, /#4 {2}egret: deny 127\.0\.0\.1:\d+/);
  assert.match(text, /egret_connections_allow 3/);
});
