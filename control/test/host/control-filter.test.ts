// The real chain at the host tier: the built egret.wasm (enforcement filter) in the Node
// proxy-wasm host, talking over real gRPC to the real ControlService (file mode), with DNS
// observations arriving through AgentService.Observe — snapshot, Lookup hold and release (the
// race), deny of what the pod never resolved, and verdict reports in control's audit log.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { EnvoyHost, RealClock, type Connection } from "../../src/host/index.js";
import { ControlFixture, loopbackOf, egressPolicy, eventually, observation, observe } from "../support/control-harness.js";
import { CONTROL_CLUSTER, EGRET_WASM, clientHello } from "./egress-fixture.js";

const POD = { name: "web-0", namespace: "shop", ips: ["10.1.0.7"], labels: { app: "web" } };
const POLICY = egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com", "late.example.com"]);

test("the real filter and the real control: resolved names pass, the race is held not denied, the rest is denied", { skip: !existsSync(EGRET_WASM) && "filter/build/egret.wasm is not built" }, async (t) => {
  const control = await new ControlFixture([POD], { "web.yaml": POLICY }).start();
  t.after(async () => {
    await control.stop();
    control.cleanup();
  });
  await observe(control.address, [observation("10.1.0.7", "api.example.com", ["203.0.113.10"], 300)]);
  const host = await EnvoyHost.create({
    wasm: EGRET_WASM,
    pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 3000 }),
    concurrency: 1,
    node: { name: POD.name, namespace: POD.namespace, labels: POD.labels, instanceIps: POD.ips },
    grpcClusters: { [CONTROL_CLUSTER]: control.address },
    grpcSourceAddress: loopbackOf(POD),
    clock: new RealClock(),
  });
  t.after(() => host.close());
  await eventually(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, "the filter's first snapshot (main VM and worker)");
  let port = 41000;
  const connect = (destination: string): Connection => host.openConnection({ source: `10.1.0.7:${port++}`, destination });
  const decided = (c: Connection) => eventually(() => c.upstreamConnectRequested || c.closed, `a verdict for ${c.destination}`);

  // Resolved before: allowed (from the snapshot, or via Lookup — either way control's data).
  const known = connect("203.0.113.10:443");
  await decided(known);
  assert.equal(known.upstreamConnectRequested, true);
  await known.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads the hello from then on
  known.downstreamData(clientHello("api.example.com"));
  assert.equal(known.closed, false);

  // The race: the connection comes first, the observation lands while it is held.
  const racing = connect("203.0.113.11:443");
  assert.equal(racing.upstreamConnectRequested, false, "held while the filter asks control");
  await eventually(() => control.service.lookups.pending >= 1 || racing.upstreamConnectRequested, "control to see the Lookup");
  await observe(control.address, [observation("10.1.0.7", "late.example.com", ["203.0.113.11"], 300)]);
  await decided(racing);
  assert.equal(racing.upstreamConnectRequested, true, "released once the observation landed: no false deny");
  assert.equal(racing.closed, false);

  // Never resolved by this pod: denied after the Lookup found nothing, without a SYN.
  const stranger = connect("203.0.113.66:443");
  await decided(stranger);
  assert.equal(stranger.upstreamConnectRequested, false);
  assert.equal(stranger.closed, true);

  // Every decision reached control's audit log.
  const lines = await eventually(() => {
    const parsed = control.audit.map((l) => JSON.parse(l) as { dst: string; verdict: string; reason: string; names: string[]; pod: string });
    return parsed.length >= 3 && parsed;
  }, "three audit lines");
  const byDst = new Map(lines.map((l) => [l.dst, l]));
  assert.equal(byDst.get("203.0.113.10:443")?.verdict, "allow");
  assert.deepEqual(byDst.get("203.0.113.11:443")?.names, ["late.example.com"]);
  assert.equal(byDst.get("203.0.113.11:443")?.verdict, "allow");
  assert.equal(byDst.get("203.0.113.66:443")?.verdict, "deny");
  assert.equal(byDst.get("203.0.113.66:443")?.pod, "shop/web-0");
});

test("a policy change reaches open connections: the real control pushes it, the filter closes what it now denies, the audit log says revoked", { skip: !existsSync(EGRET_WASM) && "filter/build/egret.wasm is not built" }, async (t) => {
  const control = await new ControlFixture([POD], { "web.yaml": POLICY }).start();
  t.after(async () => {
    await control.stop();
    control.cleanup();
  });
  await observe(control.address, [
    observation("10.1.0.7", "api.example.com", ["203.0.113.10"], 300),
    observation("10.1.0.7", "late.example.com", ["203.0.113.11"], 300),
  ]);
  const host = await EnvoyHost.create({
    wasm: EGRET_WASM,
    pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 3000 }),
    concurrency: 1,
    node: { name: POD.name, namespace: POD.namespace, labels: POD.labels, instanceIps: POD.ips },
    grpcClusters: { [CONTROL_CLUSTER]: control.address },
    grpcSourceAddress: loopbackOf(POD),
    clock: new RealClock(),
  });
  t.after(() => host.close());
  await eventually(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, "the filter's first snapshot (main VM and worker)");
  let port = 42000;
  const open = async (destination: string, sni: string): Promise<Connection> => {
    const c = host.openConnection({ source: `10.1.0.7:${port++}`, destination });
    await eventually(() => c.upstreamConnectRequested || c.closed, `a verdict for ${destination}`);
    await Promise.race([c.whenUpstreamConnected, c.whenClosed]);
    c.downstreamData(clientHello(sni));
    assert.equal(c.closed, false, `${sni} allowed`);
    return c;
  };
  const api = await open("203.0.113.10:443", "api.example.com");
  const late = await open("203.0.113.11:443", "late.example.com");
  await eventually(() => control.audit.length >= 2, "two allow lines");

  // The operator removes api.example.com from the policy: control recompiles and pushes it.
  control.writePolicy("web.yaml", egressPolicy("web-egress", "shop", { app: "web" }, ["late.example.com"]));
  control.reload();
  await eventually(() => api.closed, "the open connection to api.example.com closed");
  assert.equal(late.closed, false, "late.example.com is still allowed");
  const revoked = await eventually(() => control.audit.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reason === "revoked"), "the revoked audit line");
  assert.deepEqual([revoked.verdict, revoked.dst, revoked.names, revoked.sni, revoked.policy], ["deny", "203.0.113.10:443", ["api.example.com"], "api.example.com", "shop/web-egress"]);
  assert.equal(revoked.detail, "policy changed: default-deny");
  assert.equal(host.metric("egret_decisions_revoked"), 1);
});
