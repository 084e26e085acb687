// Linking and VM start exactly like proxy-wasm-cpp-host/V8 (reference/proxy-wasm.md §1.1, §1.5, §9.1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnvoyHost, LinkError } from "../../src/host/index.js";
import { assemble, probePath, type ModuleSpec } from "./helpers.js";

const base = (): ModuleSpec => ({
  imports: [{ module: "env", name: "proxy_log", params: ["i32", "i32", "i32"], results: ["i32"] }],
  funcs: [
    { name: "proxy_abi_version_0_2_1", params: [], results: [] },
    { name: "malloc", params: ["i32"], results: ["i32"] },
    { name: "proxy_on_context_create", params: ["i32", "i32"], results: [] },
  ],
});

// Test that a well-formed hand-assembled module loads (the baseline for the failures below, §1.1).
test("a minimal module with the marker, malloc and memory loads", async () => {
  const host = await EnvoyHost.create({ wasm: assemble(base()), concurrency: 1 });
  try {
    assert.deepEqual(host.vmStatus().map((v) => v.name), ["main", "worker-0"]);
    assert.ok(host.vmStatus().every((v) => !v.failed));
  } finally { await host.close(); }
});

// Test that a module without an ABI marker export is refused (§1.1).
test("missing proxy_abi_version export → Missing or unknown Proxy-Wasm ABI version", async () => {
  const spec = base();
  spec.funcs = spec.funcs!.filter((f) => !f.name.startsWith("proxy_abi"));
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), (e: Error) => e instanceof LinkError && /Missing or unknown Proxy-Wasm ABI version/.test(e.message));
});

// Test that an import with the right name but another signature is an import type mismatch (§1.1).
test("import with a wrong signature → import type mismatch", async () => {
  const spec = base();
  spec.imports = [{ module: "env", name: "proxy_log", params: ["i64", "i32", "i32"], results: ["i32"] }];
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /import type mismatch: env\.proxy_log/);
});

// Test that env.abort (AssemblyScript's default) is a missing import (§1.5).
test("env.abort import → missing import", async () => {
  const spec = base();
  spec.imports!.push({ module: "env", name: "abort", params: ["i32", "i32", "i32", "i32"], results: [] });
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /missing import: env\.abort/);
});

// Test that 0.1.0-only host functions are not offered to 0.2.1 modules (§1.1), using a module built by asc.
test("proxy_get_configuration is not linked for an ABI 0.2.1 module", async () => {
  await assert.rejects(EnvoyHost.create({ wasm: probePath("host_bad_import") }), /missing import: env\.proxy_get_configuration/);
});

// Test that the 0.2.1-only proxy_get_log_level is refused to a 0.2.0 module (§1.1).
test("proxy_get_log_level is only for ABI 0.2.1", async () => {
  const spec = base();
  spec.funcs![0].name = "proxy_abi_version_0_2_0";
  spec.imports!.push({ module: "env", name: "proxy_get_log_level", params: ["i32"], results: ["i32"] });
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /missing import: env\.proxy_get_log_level/);
  spec.funcs![0].name = "proxy_abi_version_0_2_1";
  const host = await EnvoyHost.create({ wasm: assemble(spec), concurrency: 1 });
  await host.close();
});

// Test that imported globals are rejected (§1.1).
test("imported global → refused", async () => {
  const spec = base();
  spec.importGlobal = { module: "env", name: "g" };
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /imported global/);
});

// Test that a callback exported with the wrong signature fails loading (§1.1 export check).
test("callback with a wrong signature → Bad function signature", async () => {
  const spec = base();
  spec.funcs!.push({ name: "proxy_on_new_connection", params: ["i32", "i32"], results: ["i32"] });
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /Bad function signature for: proxy_on_new_connection/);
});

// Test that one of malloc / proxy_on_memory_allocate is required (§1.4).
test("no malloc and no proxy_on_memory_allocate → missing malloc function", async () => {
  const spec = base();
  spec.funcs = spec.funcs!.filter((f) => f.name !== "malloc");
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /missing malloc function/);
  spec.funcs.push({ name: "proxy_on_memory_allocate", params: ["i32"], results: ["i32"] });
  const host = await EnvoyHost.create({ wasm: assemble(spec), concurrency: 1 });
  await host.close();
});

// Test that WASI functions are linked under both module names, with Envoy's signatures (§1.3).
test("WASI imports link under wasi_snapshot_preview1 and wasi_unstable", async () => {
  const spec = base();
  spec.imports!.push({ module: "wasi_snapshot_preview1", name: "fd_write", params: ["i32", "i32", "i32", "i32"], results: ["i32"] });
  spec.imports!.push({ module: "wasi_unstable", name: "clock_time_get", params: ["i32", "i64", "i32"], results: ["i32"] });
  const host = await EnvoyHost.create({ wasm: assemble(spec), concurrency: 1 });
  await host.close();
  spec.imports!.push({ module: "wasi_snapshot_preview1", name: "path_link", params: ["i32", "i32", "i32", "i32", "i32", "i32", "i32"], results: ["i32"] });
  await assert.rejects(EnvoyHost.create({ wasm: assemble(spec) }), /import type mismatch: wasi_snapshot_preview1\.path_link/);
});

// Test that hostcalls other than logging trap during _start, failing the VM (§1.5 restricted_callback).
test("a metric defined from top-level code (_start) fails with restricted_callback", async () => {
  await assert.rejects(EnvoyHost.create({ wasm: probePath("host_restricted_start") }), /plugin rejected in the base VM: .*restricted_callback: env\.proxy_define_metric during _start/);
});

// Test that while the host calls malloc only logging-like calls are allowed (§1.5, CPPH allocMemory):
// a malloc that sets a tick period traps with restricted_callback and fails the VM.
test("a hostcall from inside malloc fails with restricted_callback", async () => {
  const i32 = (n: number): number[] => { const out: number[] = []; for (;;) { const b = n & 0x7f; n >>= 7; if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) { out.push(b); return out; } out.push(b | 0x80); } };
  const module = (mallocCallsHost: boolean): Uint8Array => assemble({
    imports: [
      { module: "env", name: "proxy_set_tick_period_milliseconds", params: ["i32"], results: ["i32"] },
      { module: "env", name: "proxy_get_buffer_bytes", params: ["i32", "i32", "i32", "i32", "i32"], results: ["i32"] },
    ],
    funcs: [
      { name: "proxy_abi_version_0_2_1", params: [], results: [] },
      // malloc(n): [proxy_set_tick_period_milliseconds(1);] return 1024
      { name: "malloc", params: ["i32"], results: ["i32"], code: [...(mallocCallsHost ? [0x41, ...i32(1), 0x10, 0x00, 0x1a] : []), 0x41, ...i32(1024), 0x0b] },
      // on_vm_start: reads the VM configuration, which makes the host call malloc; returns true
      { name: "proxy_on_vm_start", params: ["i32", "i32"], results: ["i32"], code: [0x41, ...i32(6), 0x41, 0x00, 0x41, ...i32(100), 0x41, 0x00, 0x41, ...i32(4), 0x10, 0x01, 0x1a, 0x41, 0x01, 0x0b] },
    ],
  });
  const ok = await EnvoyHost.create({ wasm: module(false), vmConfig: "hello", concurrency: 1 });
  await ok.close();
  await assert.rejects(EnvoyHost.create({ wasm: module(true), vmConfig: "hello", concurrency: 1 }),
    /plugin rejected in the canary VM: RestrictedCallback: restricted_callback: env\.proxy_set_tick_period_milliseconds during malloc/);
});

// Test that bad input files give a clear error (§1.1 load failures).
test("unreadable or invalid wasm gives a clear error", async () => {
  await assert.rejects(EnvoyHost.create({ wasm: "/nonexistent/x.wasm" }), /cannot read wasm module \/nonexistent\/x\.wasm: ENOENT/);
  await assert.rejects(EnvoyHost.create({ wasm: Buffer.from("not wasm") }), /not a WebAssembly binary/);
});
