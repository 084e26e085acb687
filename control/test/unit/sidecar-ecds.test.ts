// The mesh in a box's istio-agent module download (sidecar/module-fetch.ts) and ECDS filter slot
// (sidecar/ecds.ts): retries only on transport errors and retryable 5xx, sha256 checked, and what
// a failed download does on Istio 1.20–1.24 (NACK) and ≥ 1.25 (deny-all fallback).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { fetchModule, retryableStatus, backoffMs, ModuleFetchError } from "../../src/sidecar/module-fetch.js";
import { EcdsFilter, failureForIstio } from "../../src/sidecar/ecds.js";
import type { EnvoyHost } from "../../src/host/index.js";
import { silentLogger } from "../../src/common/log.js";

const MODULE = Buffer.concat([Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), Buffer.from("egret test module")]);
const SHA = createHash("sha256").update(MODULE).digest("hex");

/** A module server answering each request with the next status of `script` (then 200). */
async function moduleServer(script: number[]): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    const status = script[n++] ?? 200;
    if (status === 200) res.writeHead(200, { "content-type": "application/wasm" }).end(MODULE);
    else res.writeHead(status, { "retry-after": "5" }).end(`status ${status}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/wasm/egret.wasm?sha256=${SHA}`, requests: () => n, close: () => new Promise((r) => server.close(() => r())) };
}

const noSleep = { sleep: async () => undefined, random: () => 0.5 };

test("istio-agent's retry rule: 5xx except 501, 505, 511; everything else is final", () => {
  for (const s of [500, 502, 503, 504, 599]) assert.equal(retryableStatus(s), true, String(s));
  for (const s of [200, 301, 400, 403, 404, 429, 501, 505, 511]) assert.equal(retryableStatus(s), false, String(s));
  // Exponential from 500 ms, ×1.5, ±50 % (random 0.5 = the middle).
  assert.deepEqual([0, 1, 2, 3].map((n) => Math.round(backoffMs(n, 500, () => 0.5))), [501, 751, 1126, 1688]); // cenkalti: min + random·(max − min + 1)
  assert.ok(backoffMs(0, 500, () => 0) >= 250 && backoffMs(0, 500, () => 0.999) <= 751);
});

test("a 503 with Retry-After is retried until the module arrives; its sha256 is checked", async () => {
  const s = await moduleServer([503, 503]);
  try {
    const waits: number[] = [];
    const got = await fetchModule(s.url, SHA, { ...noSleep, sleep: async (ms) => { waits.push(ms); } });
    assert.deepEqual(got, MODULE);
    assert.equal(s.requests(), 3);
    assert.deepEqual(waits.map(Math.round), [501, 751]);
  } finally { await s.close(); }
});

test("a 404 (or 501) fails at once; five 500s fail after five attempts; a wrong sha256 is refused", async () => {
  for (const [script, attempts] of [[[404], 1], [[501], 1], [[500, 500, 500, 500, 500], 5]] as const) {
    const s = await moduleServer([...script]);
    try {
      await assert.rejects(fetchModule(s.url, SHA, noSleep), (e: ModuleFetchError) => {
        assert.equal(e.attempts, attempts);
        assert.match(e.message, new RegExp(`^wasm module download failed after ${attempts} attempts, last error: wasm module download request failed: status code ${script[0]}$`));
        return true;
      });
      assert.equal(s.requests(), attempts);
    } finally { await s.close(); }
  }
  const s = await moduleServer([]);
  try {
    await assert.rejects(fetchModule(s.url, "0".repeat(64), noSleep), /has checksum [0-9a-f]{64}, which does not match: 0{64}/);
    assert.equal(s.requests(), 1, "a checksum mismatch is not retried");
  } finally { await s.close(); }
});

test("connection refused is retried (control not started yet), five attempts", async () => {
  const s = await moduleServer([]);
  const url = s.url;
  await s.close();
  const errors: string[] = [];
  await assert.rejects(fetchModule(url, SHA, { ...noSleep, onAttempt: (_n, e) => errors.push(e) }), /failed after 5 attempts/);
  assert.equal(errors.length, 5);
  assert.match(errors[0]!, /ECONNREFUSED/);
});

test("Istio versions: 1.20-1.24 NACK, 1.25 and later fall back to deny-all, older ones have no network-filter ECDS", () => {
  assert.equal(failureForIstio("1.20"), "nack");
  assert.equal(failureForIstio("1.24.3"), "nack");
  assert.equal(failureForIstio("1.25"), "deny-all");
  assert.equal(failureForIstio("1.29"), "deny-all");
  assert.throws(() => failureForIstio("1.19"), /need Istio 1.20 or later/);
  assert.throws(() => failureForIstio("latest"), /not an Istio version/);
});

/** A stand-in for EnvoyHost: the slot only counts its connections and closes it. */
function fakeHost(label: string): EnvoyHost & { label: string; closedAt?: number; open: number } {
  const h = { label, open: 0, closedAt: undefined as number | undefined, get openConnections() { return h.open; }, async close() { h.closedAt = Date.now(); } };
  return h as unknown as EnvoyHost & { label: string; closedAt?: number; open: number };
}

test("the ECDS slot: install, failed upgrade (NACK keeps the module; deny-all replaces it), a later push recovers; the old module drains", async () => {
  for (const failure of ["nack", "deny-all"] as const) {
    const s = await moduleServer([]);
    const hosts: Array<ReturnType<typeof fakeHost>> = [];
    const slot = new EcdsFilter({ failure, logger: silentLogger(), initial: "passthrough", fetch: noSleep, createHost: async () => { const h = fakeHost(`m${hosts.length}`); hosts.push(h); return h; } });
    try {
      assert.equal(slot.current(), "passthrough", "before the EnvoyFilter: no filter");
      assert.equal(await slot.push(s.url, SHA), "applied");
      assert.equal(slot.current(), hosts[0]);
      hosts[0]!.open = 1; // a connection still open on the first module
      const bad = s.url.replace(SHA, "f".repeat(64));
      assert.equal(await slot.push(bad, "f".repeat(64)), failure, "checksum mismatch");
      if (failure === "nack") {
        assert.equal(slot.current(), hosts[0], "NACK: the running filter stays");
        assert.deepEqual([slot.status().state, slot.status().nacks], ["module", 1]);
      } else {
        assert.equal(slot.current(), "deny-all");
        assert.deepEqual([slot.status().state, slot.status().fallbacks, slot.status().rbacDenied], ["deny-all", 1, 1]);
      }
      assert.equal(await slot.push(s.url, SHA), "applied", "the next push recovers");
      const now = slot.current();
      assert.equal(now, failure === "nack" ? hosts[0] : hosts[1], failure === "nack" ? "same module: nothing reloaded" : "a fresh host for new connections");
      if (failure === "deny-all") {
        assert.equal(hosts[0]!.closedAt, undefined, "draining while its connection is open");
        hosts[0]!.open = 0;
        await new Promise((r) => setTimeout(r, 450));
        assert.ok(hosts[0]!.closedAt !== undefined, "closed once its connections are gone");
      }
    } finally { await slot.close(); await s.close(); }
  }
});

test("a new pod's listener waits for its module (not ready); on 1.20-1.24 a failed download keeps it waiting", async () => {
  const s = await moduleServer([404]);
  const slot = new EcdsFilter({ failure: "nack", logger: silentLogger(), initial: "warming", fetch: noSleep, createHost: async () => fakeHost("m") });
  try {
    assert.equal(slot.ready, false);
    assert.equal(slot.current(), "warming");
    assert.equal(await slot.push(s.url, SHA), "nack");
    assert.equal(slot.ready, false, "never Ready (initial_fetch_timeout 0s)");
    assert.equal(await slot.push(s.url, SHA), "applied");
    assert.equal(slot.ready, true);
  } finally { await slot.close(); await s.close(); }
});
