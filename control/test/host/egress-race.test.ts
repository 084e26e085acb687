// The race (design.md "The race, and the hold"): an app connects within microseconds of getting
// its DNS answer, before control has pushed the resolution to the filter. 10,000 connections, each
// to a fresh IP whose resolution reaches control at (about) the instant the connection opens,
// must never be denied for lack of the resolution. The added delay is measured and printed, not
// asserted (timing belongs to the benchmarks).
import { test } from "node:test";
import assert from "node:assert/strict";
import { RealClock, EnvoyHost, type Connection } from "../../src/host/index.js";
import { startFileControl, type FileControl } from "../support/file-control.js";
import { ipToBytes } from "../../src/proto/index.js";
import { egressWorld, clientHello, CONTROL_CLUSTER, EGRET_WASM } from "./egress-fixture.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: api-only, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: ["**.api.example.com"]}, ports: [{port: 443}]}
`;

const TOTAL = 10_000;
// Connections in flight at once (a burst from one app); the whole mesh runs in this one process.
const CONCURRENT = 10;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

test(`the race: ${TOTAL} connections opened the instant their DNS answer is observed are never denied`, { timeout: 600_000 }, async () => {
  // Real time here: the filter's own Lookup deadline runs on the wall clock, as in Envoy. The whole
  // mesh (control, filter VMs, test) shares this process and the test runner runs other files in
  // parallel, so the deadline is generous (EGRET_RACE_LOOKUP_MS overrides it; the production
  // default is 250 ms): what is asserted is that every held connection gets its resolution, not
  // how fast — the delay is printed for the record.
  const lookupTimeoutMs = Number(process.env.EGRET_RACE_LOOKUP_MS ?? 2000);
  const w = await egressWorld({ policy: POLICY, clock: new RealClock(), concurrency: 2, config: { lookupTimeoutMs, reportBufferBytes: 4 << 20, reportBatchSize: 1000 } });
  try {
    const delays: number[] = [];
    let denied = 0;
    let next = 0;
    const one = async (i: number) => {
      const ip = `10.${200 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
      const name = `n${i}.api.example.com`;
      const expires = Date.now() + 300_000;
      // The agent's observation lands at control just before, at, or just after the connect.
      const when = i % 3;
      if (when === 0) w.control.addResolution(ip, name, expires);
      const t0 = process.hrtime.bigint();
      const c = w.connect(`${ip}:443`);
      if (when === 1) w.control.addResolution(ip, name, expires);
      if (when === 2) setImmediate(() => w.control.addResolution(ip, name, expires));
      await Promise.race([c.whenUpstreamRequested, c.whenClosed]);
      delays.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!c.closed) {
        await c.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads the hello from then on
        const hello = clientHello(name);
        c.downstreamData(hello);
        // The claim may need control (a name the filter's table has not got yet): wait for the
        // verdict on the bytes, not only the one on the address, before the client goes.
        await verdictOnBytes(c, hello.length);
      }
      if (c.closed) denied++;
      c.downstreamClose();
    };
    const workers = Array.from({ length: CONCURRENT }, async () => {
      while (next < TOTAL) await one(next++);
    });
    await Promise.all(workers);
    delays.sort((a, b) => a - b);
    const held = w.metric("egret_holds_lookup");
    console.log(`race (Lookup deadline ${lookupTimeoutMs} ms): ${TOTAL} connections, ${denied} denied, ${held} held for Lookup, added delay p50 ${percentile(delays, 50).toFixed(2)} ms, p99 ${percentile(delays, 99).toFixed(2)} ms, max ${delays.at(-1)!.toFixed(2)} ms`);
    if (denied) console.log([...w.host.metrics()].filter(([k, v]) => v && k.includes("decisions")));
    assert.equal(denied, 0, "no connection may be denied because the filter's table was behind");
    assert.equal(w.metric("egret_decisions_lookup_timeout"), 0);
    assert.equal(w.metric("egret_decisions_unattributed"), 0);
    assert.equal(w.metric("egret_connections_allow"), TOTAL);
    assert.ok(held > 0, "the race really happened: connections were held for Lookup");
  } finally {
    await w.close();
  }
});

// The same race against the real control service (file mode): its store, Watch hub (deltas) and
// Lookup (parked until the observation lands), fed as the agent's Observe stream feeds it.
test(`the race against the real egret control: connections opened as the agent's observation lands are never denied`, { timeout: 600_000 }, async () => {
  const total = TOTAL;
  let control: FileControl | undefined;
  let host: EnvoyHost | undefined;
  try {
    control = await startFileControl({ policy: POLICY, pods: "pods:\n  - {name: web-0, namespace: shop, ips: [10.1.0.7, 127.1.0.7], node: node-1, labels: {app: web}}\n" });
    const { grpcPort } = control;
    host = await EnvoyHost.create({
      wasm: EGRET_WASM, concurrency: 2, clock: new RealClock(),
      pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, lookupTimeoutMs: Number(process.env.EGRET_RACE_LOOKUP_MS ?? 2000) }),
      node: { name: "web-0", namespace: "shop", labels: { app: "web" }, instanceIps: ["10.1.0.7"] },
      grpcClusters: { [CONTROL_CLUSTER]: `127.0.0.1:${grpcPort}` },
      // The pod's loopback "network namespace": control serves the filter by that address.
      grpcSourceAddress: "127.1.0.7",
    });
    const h = host;
    const metric = (n: string) => h.metric(n) ?? 0;
    for (const deadline = Date.now() + 30_000; metric("egret_watch_snapshots") < 3 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 5));
    const store = control.service.store;
    let denied = 0;
    let next = 0;
    const delays: number[] = [];
    const one = async (i: number) => {
      const ip = `10.${210 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
      const name = `n${i}.api.example.com`;
      // What the agent's Observe stream delivers to the store, landing around the connect.
      const observe = () => store.record(ipToBytes("10.1.0.7"), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(ip), ttlSeconds: 300 }], observedUnixMs: Date.now() });
      const when = i % 3;
      if (when === 0) observe();
      const t0 = process.hrtime.bigint();
      const c = h.openConnection({ source: `10.1.0.7:${20000 + (i % 40000)}`, destination: `${ip}:443` });
      if (when === 1) observe();
      if (when === 2) setImmediate(observe);
      await Promise.race([c.whenUpstreamRequested, c.whenClosed]);
      delays.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!c.closed) {
        await c.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads the hello from then on
        const hello = clientHello(name);
        c.downstreamData(hello);
        // The claim may need control (a name the filter's table has not got yet): wait for the
        // verdict on the bytes, not only the one on the address, before the client goes.
        await verdictOnBytes(c, hello.length);
      }
      if (c.closed) denied++;
      c.downstreamClose();
    };
    await Promise.all(Array.from({ length: CONCURRENT }, async () => { while (next < total) await one(next++); }));
    delays.sort((a, b) => a - b);
    console.log(`race vs real control: ${total} connections, ${denied} denied, ${metric("egret_holds_lookup")} held, ${metric("egret_lookup_found")} Lookups found, p50 ${percentile(delays, 50).toFixed(2)} ms, p99 ${percentile(delays, 99).toFixed(2)} ms`);
    if (denied) {
      console.log([...h.metrics()].filter(([k, v]) => v && /decisions|lookup|table|watch/.test(k)));
      console.log(h.logs().filter((l) => l.level >= 3).slice(0, 10).map((l) => `${l.vm}: ${l.message}`));
    }
    assert.equal(denied, 0);
    assert.equal(metric("egret_connections_allow"), total);
  } finally {
    await host?.close();
    await control?.stop();
  }
});

/** Resolves once the filter forwarded `n` held client bytes or closed (real time, 10 s at most). */
async function verdictOnBytes(c: Connection, n: number): Promise<void> {
  for (const deadline = Date.now() + 10_000; !c.closed && c.sentUpstream.length < n && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 1));
}
