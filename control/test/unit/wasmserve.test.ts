// Test that the control service's module endpoint gives istio-agent the exact bytes and digest.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createWasmHandler, loadWasmModule, WASM_PATH, WASM_SHA256_PATH } from "../../src/wasmserve/index.js";

// A minimal valid module header plus a custom section, built rather than pasted.
const moduleBytes = Buffer.concat([Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]), Buffer.from([0x00, 0x04, 0x03, 0x61, 0x62, 0x63])]);
const sha = createHash("sha256").update(moduleBytes).digest("hex");
const dir = mkdtempSync(join(tmpdir(), "egret-wasmserve-"));
let server: Server;
let base = "";

before(async () => {
  const file = join(dir, "egret.wasm");
  writeFileSync(file, moduleBytes);
  const handle = createWasmHandler(loadWasmModule(file));
  server = createServer((req, res) => {
    if (!handle(req, res)) { res.writeHead(418); res.end("next handler"); }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

test("serves the module bytes with their sha256 as ETag", async () => {
  const res = await fetch(base + WASM_PATH);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/wasm");
  assert.equal(res.headers.get("etag"), `"${sha}"`);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), moduleBytes);
});

test("serves the digest in sha256sum format", async () => {
  const res = await fetch(base + WASM_SHA256_PATH);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), `${sha}  egret.wasm\n`);
});

test("a URL naming the right digest is immutable; a wrong digest is a 404 that names both", async () => {
  const ok = await fetch(`${base}${WASM_PATH}?sha256=${sha.toUpperCase()}`);
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("cache-control") ?? "", /immutable/);
  await ok.arrayBuffer();
  const stale = await fetch(`${base}${WASM_PATH}?sha256=${"0".repeat(64)}`);
  assert.equal(stale.status, 404);
  const text = await stale.text();
  assert.ok(text.includes(sha) && text.includes("0".repeat(64)));
});

test("HEAD, conditional GET, wrong method, other paths", async () => {
  const head = await fetch(base + WASM_PATH, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(moduleBytes.length));
  const cached = await fetch(base + WASM_PATH, { headers: { "if-none-match": `"${sha}"` } });
  assert.equal(cached.status, 304);
  const post = await fetch(base + WASM_PATH, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  await post.text();
  const other = await fetch(base + "/metrics");
  assert.equal(other.status, 418, "not ours: left to the next handler");
  await other.text();
});

test("refuses a file that is not a wasm module, and a missing file, with the path in the message", () => {
  const bad = join(dir, "not.wasm");
  writeFileSync(bad, "hello world");
  assert.throws(() => loadWasmModule(bad), new RegExp(`${bad} is not a WebAssembly module`));
  assert.throws(() => loadWasmModule(join(dir, "missing.wasm")), /cannot read the filter module .*missing\.wasm/);
});
