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
  const host = await EnvoyHost.create({ connectImmediately: true,
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
