// The built egret.wasm links in Envoy: every import is one Envoy provides with the identical
// signature, and the module exports what Envoy requires (reference/proxy-wasm.md §1.1, §1.4, §1.5).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { readSignatures } from "../../src/host/wasm-binary.js";
import { EGRET_WASM, REPO_ROOT } from "./helpers.js";

// Envoy's host functions, as project data (docs/reference/README.md says where they come from).
const REFERENCE = `${REPO_ROOT}docs/reference/envoy-host-imports.json`;

interface RefImport { module: string; name: string; params: string[]; results: string[]; network_filter_supported?: boolean }

const code = (v: string): string => ({ i32: "i", i64: "I", f32: "f", f64: "F" })[v] ?? "?";

for (const wasm of [EGRET_WASM, EGRET_WASM.replace(/egret\.wasm$/, "egret.debug.wasm")]) {
  const label = wasm.split("/").pop();

  // Test that every import of the module is an Envoy host function with the same signature (§1.1).
  test(`${label}: every import is provided by Envoy with the identical signature`, () => {
    assert.ok(existsSync(REFERENCE), `reference list missing: ${REFERENCE}`);
    const ref = new Map((JSON.parse(readFileSync(REFERENCE, "utf8")) as RefImport[]).map((r) => [`${r.module}.${r.name}`, r]));
    const { imports } = readSignatures(readFileSync(wasm));
    assert.ok(imports.length > 0, "the module imports nothing: not a proxy-wasm build?");
    for (const imp of imports) {
      const key = `${imp.module}.${imp.name}`;
      assert.equal(imp.kind, "function", `${key} is an imported ${imp.kind}; Envoy rejects those`);
      const r = ref.get(key);
      assert.ok(r, `${key} is not a host function Envoy provides`);
      assert.equal(imp.signature, `${r.params.map(code).join("")}>${r.results.map(code).join("")}`, `${key} signature differs from Envoy's`);
      assert.notEqual(r.network_filter_supported, false, `${key} does nothing in a network filter`);
    }
    // AssemblyScript's defaults must be redirected (§1.5).
    for (const forbidden of ["env.abort", "env.seed", "env.trace"]) assert.ok(!imports.some((i) => `${i.module}.${i.name}` === forbidden), `${forbidden} must not be imported`);
  });

  // Test that the module exports what Envoy needs for a network filter, with the right signatures (§1.4).
  test(`${label}: exports the ABI marker, an allocator, memory and the network callbacks`, () => {
    const { exports } = readSignatures(readFileSync(wasm));
    const sig = new Map(exports.map((e) => [e.name, e.signature]));
    assert.ok(sig.has("proxy_abi_version_0_2_1"), "proxy_abi_version_0_2_1 marker");
    assert.equal(sig.get("malloc"), "i>i");
    assert.ok(exports.some((e) => e.name === "memory" && e.kind === "memory"));
    assert.equal(sig.get("_start"), ">", "built with --exportStart _start (no start section)");
    const want: Record<string, string> = {
      proxy_on_context_create: "ii>", proxy_on_vm_start: "ii>i", proxy_on_configure: "ii>i", proxy_on_tick: "i>",
      proxy_on_new_connection: "i>i", proxy_on_downstream_data: "iii>i", proxy_on_upstream_data: "iii>i",
      proxy_on_downstream_connection_close: "ii>", proxy_on_upstream_connection_close: "ii>",
      proxy_on_grpc_receive_initial_metadata: "iii>", proxy_on_grpc_receive: "iii>", proxy_on_grpc_receive_trailing_metadata: "iii>",
      proxy_on_grpc_close: "iii>", proxy_on_queue_ready: "ii>", proxy_on_done: "i>i", proxy_on_log: "i>", proxy_on_delete: "i>",
    };
    for (const [name, s] of Object.entries(want)) assert.equal(sig.get(name), s, `export ${name}`);
  });
}
