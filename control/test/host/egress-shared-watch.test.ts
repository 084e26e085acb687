// One Watch stream per sidecar (filter/assembly/egress/shared.ts): after the first ticks one VM holds
// the stream and the others apply what it publishes in shared data; Lookup and Report keep working
// from every worker; the process-wide gauges add up across VMs; a failed holder is replaced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, clientHello, type World } from "./egress-fixture.js";

const POLICY = `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
    - {name: api, action: Allow, to: {domains: ["*.api.example.com"]}, ports: [{port: 443}]}
`;

/** Ticks until one VM holds the Watch, control serves exactly one stream and the holder published. */
async function elected(w: World): Promise<void> {
  await eventually(async () => {
    await w.tick(50);
    return w.control.watchCount === 1 && w.host.sharedData("egret.watch/shop/web-0/head") !== undefined;
  }, "one Watch stream for the sidecar");
}

/** Opens a connection on `worker` and waits for its verdict (ticking, so held ones finish). */
async function decideOn(w: World, worker: number, destination: string): Promise<{ allowed: boolean; held: boolean }> {
  const held = w.metric("egret_holds_lookup");
  const c = w.host.openConnection({ source: `${w.pod.ip}:${41000 + Math.floor(Math.random() * 20000)}`, destination, worker });
  const atOnce = c.upstreamConnectRequested || c.closed;
  await eventually(async () => { if (!(c.upstreamConnectRequested || c.closed)) await w.tick(20); return c.upstreamConnectRequested || c.closed; }, `a verdict for ${destination} on worker ${worker}`);
  const allowed = !c.closed;
  if (allowed) {
    await c.whenUpstreamConnected; // tcp_proxy connects on a later turn; the filter reads client bytes from then on
    c.downstreamData(clientHello(""));
  }
  c.downstreamClose();
  return { allowed, held: !atOnce || w.metric("egret_holds_lookup") > held };
}

test("one Watch per sidecar: one VM holds the stream, every worker decides from the shared copy, deltas reach them all", async () => {
  const w = await egressWorld({ policy: POLICY, concurrency: 3, resolutions: [["203.0.113.1", "a.api.example.com", 300]] });
  try {
    // Before the first tick every VM watches (4 VMs: main + 3 workers); then one stream remains.
    await elected(w);
    assert.equal(w.control.watchCount, 1);
    assert.equal(w.metric("egret_watch_connected"), 1, "the gauge counts the sidecar's one stream");
    for (let worker = 0; worker < 3; worker++) {
      const r = await decideOn(w, worker, "203.0.113.1:443");
      assert.deepEqual(r, { allowed: true, held: false }, `worker ${worker} knows the snapshot's resolution`);
    }
    // A delta on the one stream reaches every worker without a Lookup.
    const lookups = w.control.lookups.length;
    w.control.addResolution("203.0.113.2", "b.api.example.com", Number(w.clock.nowNs() / 1_000_000n) + 300_000, true);
    await eventually(() => w.metric("egret_watch_deltas") >= 1, "the delta at the holder");
    for (let worker = 0; worker < 3; worker++) {
      const r = await decideOn(w, worker, "203.0.113.2:443");
      assert.deepEqual(r, { allowed: true, held: false }, `worker ${worker} has the delta`);
    }
    assert.equal(w.control.lookups.length, lookups, "no worker needed to ask control");
    assert.equal(w.metric("egret_table_entries"), 2, "one VM speaks for the (identical) tables");
    // Lookup still works from every worker: an unknown IP is held and asked about.
    for (let worker = 0; worker < 3; worker++) {
      const ip = `203.0.113.${10 + worker}`;
      w.control.addResolution(ip, `w${worker}.api.example.com`, Number(w.clock.nowNs() / 1_000_000n) + 300_000);
      const before = w.control.lookups.length;
      const c = w.host.openConnection({ source: `${w.pod.ip}:${42000 + worker}`, destination: `${ip}:443`, worker });
      await eventually(async () => { await w.tick(5); return c.upstreamConnectRequested || c.closed; }, `the Lookup verdict on worker ${worker}`);
      assert.equal(c.closed, false, `worker ${worker}: allowed after its Lookup`);
      assert.ok(w.control.lookups.length > before, `worker ${worker} asked control itself`);
      await c.whenUpstreamConnected;
      c.downstreamData(clientHello(""));
      c.downstreamClose();
    }
    // Report from every worker.
    const ev = await w.events(9);
    assert.equal(ev.filter((e) => e.verdict === "allow").length, ev.length);
  } finally { await w.close(); }
});

test("process-wide gauges add up across VMs: pending connections held on two workers count 2", async () => {
  const w = await egressWorld({ policy: POLICY, concurrency: 2, prepare: (c) => { c.lookupMode = "hang"; } });
  try {
    await elected(w);
    const a = w.host.openConnection({ source: `${w.pod.ip}:43001`, destination: "203.0.113.50:443", worker: 0 });
    const b = w.host.openConnection({ source: `${w.pod.ip}:43002`, destination: "203.0.113.51:443", worker: 1 });
    assert.equal(a.upstreamConnectRequested || a.closed, false, "held for Lookup");
    assert.equal(b.upstreamConnectRequested || b.closed, false, "held for Lookup");
    assert.equal(w.metric("egret_pending_connections"), 2, "each VM adds its own held connections");
    a.downstreamClose();
    b.downstreamClose();
    await eventually(() => w.metric("egret_pending_connections") === 0, "both holds released");
    assert.equal(w.metric("egret_watch_connected"), 1);
  } finally { await w.close(); }
});

test("the holder VM fails: another VM takes the Watch over after the lease, resumes from the shared version, and deltas flow again", async () => {
  const w = await egressWorld({ policy: POLICY, concurrency: 2, resolutions: [["203.0.113.1", "a.api.example.com", 300]] });
  try {
    await elected(w);
    const holderLine = () => w.host.logs().filter((e) => e.message.startsWith("egret: this VM holds the Watch")).at(-1);
    const first = await eventually(() => holderLine(), "the holder's log line");
    const vms = [w.host.mainVm, ...w.host.workers];
    const holder = vms.find((vm) => vm.name === first.vm)!;
    holder.fail(new Error("test: the holding VM traps"));
    const subscribes = () => w.control.watchRequests.filter((r) => r.type === "WATCH_REQUEST_TYPE_SUBSCRIBE");
    const before = subscribes().length;
    // The dead VM's stream ends with it; after the lease (1 s) another VM subscribes, resuming.
    await eventually(async () => { await w.tick(100); return subscribes().length > before && holderLine()!.vm !== first.vm; }, "a new holder");
    const resume = subscribes().at(-1);
    assert.equal(resume.resume_epoch, "test", "the new holder resumes from the version it followed");
    assert.ok(Number(resume.resume_version) > 0);
    await eventually(async () => { await w.tick(50); return w.control.watchCount === 1; }, "one stream again");
    // A delta pushed now reaches the surviving worker(s) through the new holder.
    w.control.addResolution("203.0.113.3", "c.api.example.com", Number(w.clock.nowNs() / 1_000_000n) + 300_000, true);
    const alive = w.host.workers.map((vm, i) => ({ vm, i })).filter(({ vm }) => !vm.failed);
    assert.ok(alive.length >= 1);
    await eventually(async () => { await w.tick(50); return (w.host.sharedData("egret.watch/shop/web-0/head")?.value.readBigUInt64LE(0) ?? 0n) > 0n && w.metric("egret_watch_deltas") >= 1; }, "the delta at the new holder");
    for (const { i } of alive) {
      const r = await decideOn(w, i, "203.0.113.3:443");
      assert.deepEqual(r, { allowed: true, held: false }, `worker ${i} has the delta from the new holder`);
    }
  } finally { await w.close(); }
});
