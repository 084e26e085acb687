// Test that the control service's module endpoint gives istio-agent the exact bytes and digest.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  createWasmHandler, fetchPreviousModule, loadWasmModule, wasmModuleFromBytes, WASM_INDEX_PATH, WASM_PATH, WASM_SHA256_PATH,
  type WasmModuleSet,
} from "../../src/wasmserve/index.js";

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

test("a URL naming the right digest is immutable; an unknown digest is a retryable 503 with Retry-After, never a 404", async () => {
  const ok = await fetch(`${base}${WASM_PATH}?sha256=${sha.toUpperCase()}`);
  assert.equal(ok.status, 200);
  const pushed = await fetch(`${base}${WASM_PATH}?sha256=${sha}&push=7`);
  assert.equal(pushed.status, 200, "the recovery push generation in the URL is ignored (egret manifests --push-generation)");
  await pushed.arrayBuffer();
  assert.match(ok.headers.get("cache-control") ?? "", /immutable/);
  await ok.arrayBuffer();
  for (const method of ["GET", "HEAD"]) {
    const stale = await fetch(`${base}${WASM_PATH}?sha256=${"0".repeat(64)}`, { method });
    assert.equal(stale.status, 503, "istio-agent retries only 5xx");
    assert.ok(Number(stale.headers.get("retry-after")) > 0, "Retry-After in seconds");
    const text = await stale.text();
    if (method === "GET") assert.ok(text.includes(sha) && text.includes("0".repeat(64)), "names both digests");
  }
});

/** Serves `set` on a fresh port; returns its base URL and a closer. */
async function serve(set: WasmModuleSet): Promise<{ url: string; close: () => Promise<void> }> {
  const handle = createWasmHandler(set);
  const s = createServer((req, res) => {
    if (!handle(req, res)) { res.writeHead(404); res.end(); }
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => s.close(() => r())) };
}

function fakeModule(tag: number) {
  return wasmModuleFromBytes(Buffer.concat([moduleBytes.subarray(0, 8), Buffer.from([0x00, 0x02, 0x01, tag])]), `module ${tag}`);
}

test("serves the previous module beside the current one, and lists both (current first)", async () => {
  const current = fakeModule(1);
  const previous = fakeModule(2);
  const srv = await serve({ current, previous });
  try {
    for (const m of [current, previous]) {
      const res = await fetch(`${srv.url}${WASM_PATH}?sha256=${m.sha256}`);
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), m.bytes);
    }
    const plain = await fetch(srv.url + WASM_PATH);
    assert.equal(plain.headers.get("etag"), `"${current.sha256}"`, "no digest in the URL means the current module");
    await plain.arrayBuffer();
    assert.deepEqual(await (await fetch(srv.url + WASM_INDEX_PATH)).json(), { current: current.sha256, modules: [current.sha256, previous.sha256] });
  } finally {
    await srv.close();
  }
});

test("a new replica takes the previous release's module from the running replicas, old or already upgraded", async () => {
  const v1 = fakeModule(1);
  const v2 = fakeModule(2);
  const v3 = fakeModule(3);
  const old = await serve({ current: v1 });
  const upgraded = await serve({ current: v2, previous: v1 });
  try {
    const fromOld = await fetchPreviousModule({ peerUrl: old.url, own: v2 });
    assert.equal(fromOld.module?.sha256, v1.sha256, fromOld.note);
    const fromUpgraded = await fetchPreviousModule({ peerUrl: upgraded.url + "/", own: v2 });
    assert.equal(fromUpgraded.module?.sha256, v1.sha256, "an upgraded peer lists the previous module second");
    const nextRelease = await fetchPreviousModule({ peerUrl: upgraded.url, own: v3 });
    assert.equal(nextRelease.module?.sha256, v2.sha256, "two releases on, only the release just before is kept");
    const same = await fetchPreviousModule({ peerUrl: old.url, own: v1 });
    assert.equal(same.module, undefined);
    assert.match(same.note, /only this release/);
  } finally {
    await old.close();
    await upgraded.close();
  }
});

test("no running replica (first install) or a peer sending wrong bytes means no previous module, with a note", async () => {
  const gone = await serve({ current: fakeModule(1) });
  const url = gone.url;
  await gone.close();
  const none = await fetchPreviousModule({ peerUrl: url, own: fakeModule(2), timeoutMs: 2000 });
  assert.equal(none.module, undefined);
  assert.match(none.note, /first install/);
  const liar = createServer((req, res) => {
    if (req.url === WASM_INDEX_PATH) { res.end(JSON.stringify({ modules: [fakeModule(1).sha256] })); return; }
    res.end(fakeModule(3).bytes);
  });
  await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r));
  try {
    const r = await fetchPreviousModule({ peerUrl: `http://127.0.0.1:${(liar.address() as AddressInfo).port}`, own: fakeModule(2) });
    assert.equal(r.module, undefined);
    assert.match(r.note, /ignored/);
  } finally {
    await new Promise<void>((r) => liar.close(() => r()));
  }
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
