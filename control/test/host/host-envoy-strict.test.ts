// The Node host is as strict as Envoy where the filter's branches depend on it (issue #16, "Tests
// as strict as production"), and the real egret.wasm is tested against each behaviour. Facts and
// sources: docs/reference/envoy-grpc.md (copied from reference/proxy-wasm.md and Envoy/Istio
// source).
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnvoyHost, ManualClock, type Connection } from "../../src/host/index.js";
import { CONTROL_CLUSTER, DEFAULT_POD, EGRET_WASM, FakeControl, clientHello, egressWorld, eventually, type World, type WorldOptions } from "./egress-fixture.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: [api.example.com]}}
`;
const API = "198.18.5.10";

async function withWorld(o: Partial<WorldOptions>, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld({ policy: POLICY, ...o });
  try { await fn(w); } finally { await w.close(); }
}

const decided = (c: Connection) => c.upstreamConnectRequested || c.closed;

// Envoy runs a gRPC call's timeout on its dispatcher's clock and reports it as UNAVAILABLE
// "upstream request timeout" (the router's local 504). The Node host now does the same on the
// injected clock, so this branch runs: the filter must still call it lookup-timeout, not
// control-unavailable, because its own deadline has passed.
test("gRPC call deadline on the injected clock: Envoy's UNAVAILABLE 'upstream request timeout' is a lookup-timeout", () =>
  withWorld({ config: { lookupTimeoutMs: 250, tickMs: 250 }, prepare: (c) => { c.lookupMode = "hang"; } }, async (w) => {
    // Off the tick phase: deadline at +250, the call's own timeout at +300 (250 + margin), the
    // next tick only at +400, so the call's timeout is what ends the hold.
    await w.tick(100);
    const started = Date.now();
    const c = w.connect(`${API}:443`);
    assert.equal(c.state, "paused", "held for Lookup");
    await w.tick(250);
    assert.equal(c.closed, false, "the deadline has passed but no timer has fired yet");
    await w.tick(50); // +300: the call's timeout fires, on the manual clock
    await eventually(() => c.closed, "the deny after the call's timeout");
    assert.ok(w.metric("egret_lookup_failed") >= 1, "the host delivered proxy_on_grpc_close for the timed-out call");
    assert.ok(Date.now() - started < 5000, "decided by the manual clock, not by waiting in real time");
    const [ev] = await w.events(1);
    assert.deepEqual([ev!.verdict, ev!.reason], ["deny", "lookup-timeout"]);
  }));

// Without the manual clock moving, a hung Lookup is never timed out by real time.
test("gRPC call deadline: a hung call is not ended by wall time while the injected clock stands still", () =>
  withWorld({ config: { lookupTimeoutMs: 50 }, prepare: (c) => { c.lookupMode = "hang"; } }, async (w) => {
    const c = w.connect(`${API}:443`);
    await new Promise((r) => setTimeout(r, 300)); // 6× the deadline in real time
    assert.equal(c.closed, false);
    assert.equal(w.metric("egret_lookup_failed"), 0);
    await eventually(async () => { await w.tick(50); return c.closed; }, "the deny once the clock moves");
  }));

// In Envoy, time passes while the dispatcher serves sockets: an answer that is ready arrives
// between two ticks. One advance() over the whole deadline must not starve the Lookup answer.
test("answers between ticks: one advance() past the Lookup deadline still lets control's prompt answer in", () =>
  withWorld({ config: { lookupTimeoutMs: 1000, tickMs: 20 } }, async (w) => {
    // Known to control only (not in the snapshot): the connection is held for Lookup.
    w.control.addResolution(API, "api.example.com", Number(w.clock.nowNs() / 1_000_000n) + 300_000);
    const c = w.connect(`${API}:443`);
    assert.equal(c.state, "paused");
    await w.tick(3000); // one call, three times the deadline
    assert.equal(c.upstreamConnectRequested, true, "the answer arrived between ticks, before the deadline");
    assert.equal(w.metric("egret_lookup_timeout"), 0);
  }));

// Envoy's tcp_proxy asks the pool for an upstream connection; it completes on a later
// dispatcher turn, and until then downstream reads stay disabled: client bytes that arrive first
// wait in the read buffer and reach the filter only after the connect.
test("async upstream connect (host default): client bytes before the connect wait; the filter judges them after", async () => {
  const clock = new ManualClock();
  const control = new FakeControl(() => Number(clock.nowNs() / 1_000_000n));
  control.setPolicy(POLICY, DEFAULT_POD);
  control.addResolution(API, "api.example.com", Number(clock.nowNs() / 1_000_000n) + 300_000);
  const address = await control.start();
  const host = await EnvoyHost.create({
    wasm: EGRET_WASM, concurrency: 1, clock, grpcClusters: { [CONTROL_CLUSTER]: address },
    pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10 }),
    node: { name: DEFAULT_POD.name, namespace: DEFAULT_POD.namespace, labels: DEFAULT_POD.labels, instanceIps: [DEFAULT_POD.ip] },
  });
  try {
    await eventually(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, "the first snapshot");
    const hello = clientHello("api.example.com");
    const ok = host.openConnection({ source: `${DEFAULT_POD.ip}:40001`, destination: `${API}:443` });
    assert.equal(ok.upstreamConnectRequested, true, "the destination is allowed by name: tcp_proxy asked for the upstream");
    assert.equal(ok.state, "connecting", "the connect has not completed inside the call that asked");
    ok.downstreamData(hello);
    assert.equal(ok.heldDownstreamBytes, hello.length, "reads are disabled until connected: the bytes wait");
    assert.equal(ok.sentUpstream.length, 0);
    await ok.whenUpstreamConnected;
    await eventually(() => ok.sentUpstream.length === hello.length, "the ClientHello judged and forwarded after the connect");
    assert.equal(ok.closed, false);
    // A faked SNI sent before the connect completes is judged all the same once it does.
    const faked = host.openConnection({ source: `${DEFAULT_POD.ip}:40002`, destination: `${API}:443` });
    faked.downstreamData(clientHello("evil.example.net"));
    assert.equal(faked.closed, false, "nothing judged before the connect");
    await eventually(() => faked.closed, "the faked SNI denied after the connect");
    assert.equal(faked.sentUpstream.length, 0, "a denied connection forwards nothing");
  } finally { await host.close(); await control.stop(); }
});

// Istio's default load balancing is LEAST_REQUEST and every Envoy worker has its own connections:
// one sidecar's Watch and Lookup can land on different control replicas.
test("replicas: Watch and Lookup land on different control replicas; every VM has its own connection", async () => {
  const clock = new ManualClock();
  const nowMs = () => Number(clock.nowNs() / 1_000_000n);
  const replicas = [new FakeControl(nowMs), new FakeControl(nowMs)];
  for (const r of replicas) r.setPolicy(POLICY, DEFAULT_POD);
  // Only replica 1 knows the name (it saw the agent's observation; replica 0 has not yet).
  replicas[1]!.addResolution(API, "api.example.com", nowMs() + 300_000);
  const addresses = [await replicas[0]!.start(), await replicas[1]!.start()];
  // The least-request choice samples two endpoints and takes the one with fewer active requests.
  // Until `spread` is set every draw is replica 0 (so every VM's Watch goes there); then one pick
  // draws replica 0 and replica 1.
  let spread: number[] = [];
  const host = await EnvoyHost.create({
    wasm: EGRET_WASM, concurrency: 2, clock,
    grpcClusters: { [CONTROL_CLUSTER]: addresses }, lbRandom: () => spread.shift() ?? 0,
    pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 5000 }),
    node: { name: DEFAULT_POD.name, namespace: DEFAULT_POD.namespace, labels: DEFAULT_POD.labels, instanceIps: [DEFAULT_POD.ip] },
  });
  try {
    await eventually(() => (host.metric("egret_watch_snapshots") ?? 0) >= 3, "a snapshot in every VM");
    assert.ok(replicas[0]!.watchCount >= 3, "main + 2 workers each watch replica 0");
    assert.equal(replicas[1]!.watchCount, 0);
    const clients = host.grpcUsage().clients;
    assert.ok(clients >= 3, "one client connection per VM (canary, main, workers), not one shared by all");
    spread = [0.1, 0.9];
    const c = host.openConnection({ source: `${DEFAULT_POD.ip}:40003`, destination: `${API}:443`, worker: 0 });
    await eventually(async () => { await host.tick(20); return decided(c); }, "the Lookup verdict");
    assert.equal(c.upstreamConnectRequested, true, "replica 1 answered from what it knew");
    assert.equal(replicas[0]!.lookups.length, 0);
    assert.equal(replicas[1]!.lookups.length, 1, "the Lookup went to the replica with fewer active requests");
    assert.equal(host.grpcUsage().clients, clients + 1, "worker-0 opened its own connection to replica 1");
  } finally { await host.close(); for (const r of replicas) await r.stop(); }
});

// On a configuration change Envoy gives each VM a second root context (reference #6). The filter
// must serve new connections from the new root while old connections finish under the old one,
// and the old root's shutdown must not disturb the new one.
test("second root context: egret.wasm decides under the new root while an old connection finishes under the old", () =>
  withWorld({ concurrency: 1, resolutions: [[API, "api.example.com", 300]] }, async (w) => {
    const hello = clientHello("api.example.com");
    const old = await w.open(`${API}:443`);
    old.downstreamData(hello);
    assert.equal(old.sentUpstream.length, hello.length, "allowed under root 1");
    assert.deepEqual(w.host.reconfigure(JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 4000 })), { ok: true });
    assert.equal(w.host.vmStatus()[1]!.rootContextIds.length, 2, "worker-0: the old root stays while its connection lives");
    await eventually(async () => { await w.tick(50); return w.metric("egret_watch_snapshots") >= 4; }, "the new roots' snapshots");
    const fresh = w.connect(`${API}:443`);
    fresh.downstreamData(hello);
    await eventually(async () => { await w.tick(20); return fresh.closed || fresh.sentUpstream.length === hello.length; }, "the new root's verdict");
    assert.equal(fresh.closed, false, "allowed under the new root");
    const faked = w.connect(`${API}:443`);
    faked.downstreamData(clientHello("evil.example.net"));
    await eventually(async () => { await w.tick(20); return faked.closed; }, "the faked SNI denied under the new root");
    old.upstreamData(Buffer.from("pong"));
    assert.equal(old.sentDownstream.toString(), "pong", "the old connection still flows under its root");
    old.downstreamClose();
    await eventually(() => w.host.vmStatus()[1]!.rootContextIds.length === 1, "the old root shut down after its last connection");
    const after = w.connect(`${API}:443`);
    after.downstreamData(hello);
    await eventually(async () => { await w.tick(20); return after.closed || after.sentUpstream.length === hello.length; }, "a verdict after the old root went");
    assert.equal(after.closed, false);
    assert.equal(w.host.vmStatus().some((v) => v.failed), false);
    assert.deepEqual(w.host.logs(4).filter((e) => !e.message.includes("Watch")).map((e) => e.message), [], "no error logged (unknown context, trap)");
  }));
