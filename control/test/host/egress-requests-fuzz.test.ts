// Fuzzing the request framing of claim-judged HTTP/1 connections (every head judged, bodies
// skipped) through egret.wasm in the Node host: seeded random and mutated pipelines of heads,
// Content-Length and chunked bodies, CONNECT/Upgrade answers, delivered in random segments, on
// direct shared-IP connections and through a declared proxy. No VM may trap and wasm memory must
// not grow once the GC reached steady state. Deterministic: a failure names a reproducible seed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld } from "./egress-fixture.js";
import { h2cRequest, h2Frame, hpackBlock, requestBlock, type HpackRep } from "../support/h2c.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: fuzz, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: [api.example.com, "*.example.com"]}}
`;
const API = "198.18.5.10";
const PROXY = "198.18.6.1:3128";

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const HOSTS = ["api.example.com", "API.example.com:80", "x.example.com", "evil.example.net", "", "[2001:db8::1]", "api.example.com evil"];
const TARGETS = ["/", "http://api.example.com/a", "http://evil.example.net/", "api.example.com:443", "*", "http://[::1]:99/x"];

function request(next: () => number): string {
  const pick = <T>(a: T[]) => a[next() % a.length]!;
  const method = pick(["GET", "POST", "CONNECT", "PUT", "HEAD", "OPTIONS"]);
  const lines = [`${method} ${pick(TARGETS)} HTTP/1.${next() % 2}`];
  const fields = next() % 5;
  for (let i = 0; i < fields; i++) {
    lines.push(pick([`Host: ${pick(HOSTS)}`, "Host : x", " folded", "Upgrade: websocket", "Accept: */*", `X-Pad: ${"p".repeat(next() % 400)}`]));
  }
  const body = next() % 4;
  if (body === 1) {
    const b = "x".repeat(next() % 64);
    lines.push(`Content-Length: ${b.length}`, "", b);
    return lines.join("\r\n");
  }
  if (body === 2) {
    const chunks = Array.from({ length: next() % 3 }, () => "c".repeat(1 + (next() % 20)));
    lines.push("Transfer-Encoding: chunked", "", ...chunks.flatMap((c) => [`${c.length.toString(16)}${next() % 3 === 0 ? ";e=1" : ""}`, c]), "0", "", "");
    return lines.join("\r\n");
  }
  if (body === 3) lines.push(`Content-Length: ${pick(["-1", "1x", "99999999999999999999", "3, 4"])}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

function mutate(b: Buffer, next: () => number): Buffer {
  const out = Buffer.from(b);
  const n = next() % 4;
  for (let k = 0; k < n && out.length > 0; k++) {
    const at = next() % out.length;
    const op = next() % 3;
    if (op === 0) out[at] = next() & 0xff;
    else if (op === 1) out[at] = [0x0d, 0x0a, 0x20, 0x3a][next() % 4]!;
    else return Buffer.concat([out.subarray(0, at), Buffer.from([next() & 0xff, 0x0a]), out.subarray(at)]);
  }
  return out;
}

test("fuzz: pipelined request heads and bodies on claim-judged connections — no trap, no memory growth", { timeout: 600_000 }, async () => {
  const w = await egressWorld({ policy: POLICY, resolutions: [[API, "api.example.com", 86_400], [API, "x.example.com", 86_400]], config: { forwardProxies: [PROXY], reportBufferBytes: 65536 } });
  try {
    const next = rng(0x5eed14);
    const vm = w.host.workers[0]!;
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const first = Buffer.from(`GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n`);
        const pipeline = Buffer.concat([first, ...Array.from({ length: 1 + (next() % 4) }, () => mutate(Buffer.from(request(next)), next))]);
        const c = await w.open(next() % 2 === 0 ? `${API}:80` : PROXY);
        let at = 0;
        while (at < pipeline.length && !c.closed) {
          const len = 1 + (next() % (next() % 4 === 0 ? 3 : 200));
          c.downstreamData(pipeline.subarray(at, at + len));
          at += len;
          if (next() % 8 === 0 && !c.closed && c.upstreamConnectRequested) {
            c.upstreamData(Buffer.from(["HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 101 Switching\r\n\r\n", "HTTP/1.0 407 x\r\n\r\n", "garbage"][next() % 4]!));
          }
        }
        if (!c.closed) c.downstreamClose();
        if (i % 100 === 0) await w.tick(20);
      }
    };
    await round(8000); // the incremental GC settles on its working heap (it reaches 8 MiB within ~4,000 connections)
    const before = vm.memory.buffer.byteLength;
    await round(3000);
    assert.equal(w.host.vmStatus().filter((s) => s.failed).length, 0, "no VM trapped");
    assert.ok(vm.memory.buffer.byteLength <= before, `wasm memory grew from ${before} to ${vm.memory.buffer.byteLength} bytes`);
    assert.equal(w.host.openConnections, 0);
    assert.ok(w.metric("egret_connections_deny") > 100 && w.metric("egret_connections_allow") > 100, "both outcomes were exercised");
  } finally {
    await w.close();
  }
});

test("fuzz: later h2c streams on claim-judged connections (HEADERS, CONTINUATION, DATA, indexed authorities, mutations) — no trap, no memory growth", { timeout: 600_000 }, async () => {
  const w = await egressWorld({ policy: POLICY, resolutions: [[API, "api.example.com", 86_400], [API, "x.example.com", 86_400]], config: { reportBufferBytes: 65536 } });
  try {
    const next = rng(0x5eed2c);
    const vm = w.host.workers[0]!;
    const pick = <T>(a: T[]) => a[next() % a.length]!;
    const first = h2cRequest(requestBlock("api.example.com"));
    const laterFrame = (stream: number): Buffer => {
      const kind = next() % 6;
      if (kind === 0) return h2Frame(0, next() % 2, stream, Buffer.alloc(next() % 40, 0x61));
      if (kind === 1) return h2Frame(8, 0, 0, Buffer.from([0, 0, 0, 1]));
      const authority: HpackRep = next() % 3 === 0 ? { indexed: 62 + (next() % 4) } : { nameIndex: 1, huffman: pick(HOSTS.filter((h) => h !== "")), indexing: next() % 2 === 0 ? "incremental" : "none" };
      const block = hpackBlock([{ indexed: 2 }, { indexed: 6 }, { indexed: 4 }, authority, ...(next() % 2 === 0 ? [{ name: "x-a", value: "v".repeat(next() % 300), indexing: "incremental" } as HpackRep] : [])]);
      if (kind === 2 && block.length > 2) {
        const cut = 1 + (next() % (block.length - 1));
        return Buffer.concat([h2Frame(1, 1, stream, block.subarray(0, cut)), h2Frame(9, 4, stream, block.subarray(cut))]);
      }
      return h2Frame(1, 5, stream, block);
    };
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const frames = Array.from({ length: 1 + (next() % 4) }, (_, k) => laterFrame(3 + 2 * k));
        const pipeline = Buffer.concat([first, ...frames.map((f) => (next() % 5 === 0 ? mutate(f, next) : f))]);
        const c = await w.open(`${API}:80`);
        let at = 0;
        while (at < pipeline.length && !c.closed) {
          const len = 1 + (next() % (next() % 4 === 0 ? 3 : 200));
          c.downstreamData(pipeline.subarray(at, at + len));
          at += len;
        }
        if (!c.closed) c.downstreamClose();
        if (i % 100 === 0) w.tick(20);
      }
    };
    await round(8000); // as above: the GC first settles on its working heap
    const before = vm.memory.buffer.byteLength;
    await round(3000);
    assert.equal(w.host.vmStatus().filter((s) => s.failed).length, 0, "no VM trapped");
    assert.ok(vm.memory.buffer.byteLength <= before, `wasm memory grew from ${before} to ${vm.memory.buffer.byteLength} bytes`);
    assert.equal(w.host.openConnections, 0);
    assert.ok(w.metric("egret_connections_deny") > 100 && w.metric("egret_connections_allow") > 100, "both outcomes were exercised");
  } finally {
    await w.close();
  }
});
