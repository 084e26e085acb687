// Grace counts once (host tier: the built egret.wasm with the real ControlService on one manual
// clock). Control sends each name's clamped-TTL expiry and only *keeps* the entry for its grace;
// the filter's engine applies the policy's resolutionGraceSeconds from that expiry. Before, both
// added theirs, and a name stayed usable for TTL + control's grace + the policy's grace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { EnvoyHost, ManualClock, type Connection } from "../../src/host/index.js";
import { ControlFixture, loopbackOf, egressPolicy, eventually, observation, observe } from "../support/control-harness.js";
import { CONTROL_CLUSTER, EGRET_WASM, clientHello } from "./egress-fixture.js";

const POD = { name: "web-0", namespace: "shop", ips: ["10.1.0.7"], labels: { app: "web" } };
const TTL_S = 10;
const POLICY_GRACE_S = 20;
const CONTROL_GRACE_S = 30;

test("a name is usable for TTL + the policy's grace, not TTL + control's grace + the policy's grace", { skip: !existsSync(EGRET_WASM) && "filter/build/egret.wasm is not built" }, async (t) => {
  const clock = new ManualClock(Date.now());
  const nowMs = () => Number(clock.nowNs() / 1_000_000n);
  const policy = egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com"], { resolutionGraceSeconds: POLICY_GRACE_S });
  const control = await new ControlFixture([POD], { "web.yaml": policy }, {}, { now: nowMs, storeLimits: { graceSeconds: CONTROL_GRACE_S, minTtlSeconds: 1 } }).start();
  t.after(async () => {
    await control.stop();
    control.cleanup();
  });
  const host = await EnvoyHost.create({
    wasm: EGRET_WASM,
    pluginConfig: JSON.stringify({ controlCluster: CONTROL_CLUSTER, reportIntervalMs: 10, lookupTimeoutMs: 5000 }),
    concurrency: 1,
    node: { name: POD.name, namespace: POD.namespace, labels: POD.labels, instanceIps: POD.ips },
    grpcClusters: { [CONTROL_CLUSTER]: control.address },
    grpcSourceAddress: loopbackOf(POD),
    clock,
  });
  t.after(() => host.close());
  await eventually(() => (host.metric("egret_watch_snapshots") ?? 0) >= 2, "the filter's first snapshot");
  const start = nowMs();
  await observe(control.address, [observation("10.1.0.7", "api.example.com", ["203.0.113.10"], TTL_S, { observed_unix_ms: start })]);
  await eventually(() => (host.metric("egret_watch_deltas") ?? 0) >= 2, "the resolution's delta in every VM");

  let port = 41000;
  const tryAt = async (offsetS: number): Promise<boolean> => {
    await clock.advance(start + offsetS * 1000 - nowMs());
    const c: Connection = host.openConnection({ source: `10.1.0.7:${port++}`, destination: "203.0.113.10:443" });
    await eventually(async () => { await clock.advance(1); return c.upstreamConnectRequested || c.closed; }, `a verdict at ${offsetS} s`);
    if (!c.closed) {
      await c.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads the hello from then on
      c.downstreamData(clientHello("api.example.com"));
    }
    const allowed = !c.closed;
    c.downstreamClose();
    return allowed;
  };
  assert.equal(await tryAt(5), true, "within the TTL");
  assert.equal(await tryAt(TTL_S + POLICY_GRACE_S - 5), true, "TTL over, within the policy's grace");
  // Control still keeps the entry (its grace is longer) but the policy's grace is over.
  assert.equal(await tryAt(TTL_S + POLICY_GRACE_S + 5), false, "beyond TTL + the policy's grace: the name no longer attributes the IP");
  const lines = await eventually(async () => {
    await clock.advance(20); // report flushes run on ticks
    return control.audit.length >= 3 && control.audit.map((l) => JSON.parse(l) as { verdict: string; names: string[] });
  }, "three audit lines");
  assert.deepEqual(lines.map((l) => l.verdict), ["allow", "allow", "deny"]);
});
