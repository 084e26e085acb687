// Coverage shared across control replicas (control/src/k8s/coverage-share.ts,
// control/src/control/coverage-peers.ts): three replicas of egret control in Kubernetes mode
// against one in-test API server, each holding the Watch of a different pod's filter. Every
// replica — the leader that writes policy status included — counts all three as enforced; a
// replica that goes away takes its pods' coverage with it once its bindings expire; a leader
// change writes no status that loses pods still enforced elsewhere, and no false Event.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import { KubeSource, LeaderElector, kubeLeaseClient } from "../../src/k8s/index.js";
import { PeerCoverage, decodeCoveragePods, encodeCoveragePods } from "../../src/control/coverage-peers.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { WatchClient, eventually, fromPod, loopbackOf } from "../support/control-harness.js";

const ipsOf = (ip: string) => [ip, loopbackOf({ ips: [ip] })];
const PODS = { "web-1": ipsOf("198.18.1.41"), "web-2": ipsOf("198.18.1.42"), "web-3": ipsOf("198.18.1.43"), "web-4": ipsOf("198.18.1.44") };
// Generous against a loaded machine: a replica that renews every 200 ms is dropped only after 3 s of silence.
const SHARE_TIMING = { renewMs: 200, leaseDurationMs: 3_000, publishDelayMs: 20, gcAfterMs: 2_000 };

interface Status {
  enforcedPods?: number;
  unenforcedPods?: number;
  unenforced?: { pod: string; reason: string }[];
}
interface CoverageBody {
  selected: number;
  enforced: number;
  pods: { pod: string; state: string; reason?: string; filters: number }[];
  replicas: { replica: string; self: boolean; pods: number; live: boolean }[];
}

async function replica(t: import("node:test").TestContext, api: FakeKube, identity: string) {
  const kc = api.kubeConfig();
  kc.users[0] = { ...kc.users[0]!, token: `token-${identity}` };
  const leader = new LeaderElector({
    client: kubeLeaseClient(kc, "egret-system", "egret-control"),
    identity,
    name: "egret-control",
    namespace: "egret-system",
    timing: { leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 100 },
    log: silentLogger(),
  });
  const source = new KubeSource({
    kubeConfig: kc,
    policyApi: defaultPolicyApi,
    log: silentLogger(),
    backoff: { initialMs: 20, maxMs: 200 },
    statusDebounceMs: 10,
    leader,
    instance: identity,
    coverageSharing: { namespace: "egret-system", identity, timing: SHARE_TIMING },
  });
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source,
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    audit: { write: () => undefined },
    serverId: identity,
    coverageGraceMs: 0,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await service.stop();
  };
  t.after(stop);
  const ports = await service.start();
  const coverage = async () => (await (await fetch(`http://127.0.0.1:${ports.httpPort}/coverage`)).json()) as CoverageBody;
  const watch = async (pod: keyof typeof PODS) => {
    const f = await fromPod(`127.0.0.1:${ports.grpcPort}`, { ips: PODS[pod] });
    const w = new WatchClient(f.address, { namespace: "shop", name: pod });
    t.after(() => (w.close(), f.close()));
    await eventually(() => w.responses.length > 0, `${pod}'s snapshot from ${identity}`);
    return w;
  };
  return { identity, leader, service, ports, coverage, watch, stop };
}

async function cluster(t: import("node:test").TestContext) {
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  api.upsert("namespaces", kube.namespace("shop"));
  for (const [name, ips] of Object.entries(PODS)) api.upsert("pods", kube.pod("shop", name, ips, { app: "web" }, { sidecar: true }));
  api.upsert("egresspolicies", {
    apiVersion: "egret.dev/v1alpha1",
    kind: "EgressPolicy",
    metadata: { name: "web-egress", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action: "Allow", to: { domains: ["api.example.com"] } }] },
  });
  const a = await replica(t, api, "control-a");
  await eventually(() => a.leader.isLeader, "control-a leads");
  const b = await replica(t, api, "control-b");
  const c = await replica(t, api, "control-c");
  const status = () => api.get("egresspolicies", "shop", "web-egress")?.status as Status | undefined;
  return { api, a, b, c, status };
}

type Ev = { reason: string; involvedObject: { name: string } };
const eventsOf = (api: FakeKube) => (api.list("events") as unknown as Ev[]).map((e) => `${e.reason}:${e.involvedObject.name}`);

test("coverage across replicas: filters split over three replicas are all enforced in the leader's status and on every replica's /coverage", async (t) => {
  const { api, a, b, c, status } = await cluster(t);
  await a.watch("web-1");
  await b.watch("web-2");
  await c.watch("web-3");
  const s = await eventually(() => (status()?.enforcedPods === 3 ? status() : undefined), "the leader counts the followers' filters");
  assert.deepEqual(s.unenforced, [{ pod: "shop/web-4", reason: "filter-not-connected" }]);
  for (const r of [a, b, c]) {
    const cov = await eventually(async () => {
      const body = await r.coverage();
      return body.enforced === 3 ? body : undefined;
    }, `${r.identity}'s /coverage is the cluster-wide view`);
    assert.deepEqual(cov.pods.map((p) => [p.pod, p.state, p.filters]), [
      ["shop/web-4", "not-enforced", 0],
      ["shop/web-1", "enforced", 1],
      ["shop/web-2", "enforced", 1],
      ["shop/web-3", "enforced", 1],
    ]);
    assert.deepEqual(cov.replicas.map((x) => [x.replica, x.self, x.pods, x.live]), [
      [r.identity, true, 1, true],
      ...[a, b, c].filter((x) => x !== r).map((x) => [x.identity, false, 1, true]),
    ]);
  }
  // /status on a follower carries the same cluster-wide figures.
  const st = (await (await fetch(`http://127.0.0.1:${b.ports.httpPort}/status`)).json()) as { coverage: { enforced: number; notEnforced: number } };
  assert.deepEqual([st.coverage.enforced, st.coverage.notEnforced], [3, 1]);
  // Each replica published its own object, and nothing else.
  const objects = api.list("configmaps").map((o) => o.metadata.name).sort();
  assert.deepEqual(objects, ["egret-coverage-control-a", "egret-coverage-control-b", "egret-coverage-control-c"]);
  assert.match(await b.service.metrics.registry.metrics(), /egret_control_coverage_peers\{state="live"\} 2/);
  // The pods enforced on followers were announced unenforced only before their filter connected.
  const after = eventsOf(api).filter((e) => /web-[23]$/.test(e));
  assert.ok(after.every((e) => e.startsWith("EgressNotEnforced") || e.startsWith("EgressEnforced")));
});

test("coverage across replicas: a leader change writes no status that loses pods enforced elsewhere and posts no false Event; a gone replica's pods expire", async (t) => {
  const { api, a, b, c, status } = await cluster(t);
  await a.watch("web-1");
  await b.watch("web-2");
  await c.watch("web-3");
  await eventually(() => status()?.enforcedPods === 3, "steady state: 3 enforced");
  await eventually(async () => (await b.coverage()).enforced === 3 && (await c.coverage()).enforced === 3, "every replica holds the union");
  // Steady state: every pod still unenforced has been announced, every enforced one announced enforced again.
  await eventually(() => ["web-1", "web-2", "web-3"].every((p) => eventsOf(api).includes(`EgressEnforced:${p}`)), "startup Events settled");
  const statusWritesBefore = api.history("egresspolicies").length;
  const eventsBefore = eventsOf(api).length;

  // The leader goes away (its filter's stream with it): another replica leads.
  await a.stop();
  await eventually(() => b.leader.isLeader || c.leader.isLeader, "a new leader", 10_000);
  const next = b.leader.isLeader ? b : c;
  // web-1's binding expires after the lease: it becomes filter-not-connected, announced once.
  await eventually(() => status()?.unenforced?.some((u) => u.pod === "shop/web-1" && u.reason === "filter-not-connected"), "web-1 unenforced after control-a's bindings expired", 15_000);
  await eventually(() => eventsOf(api).slice(eventsBefore).includes("EgressNotEnforced:web-1"), "web-1 announced");
  assert.equal(status()!.enforcedPods, 2);

  // Every status written since the change kept web-2 and web-3 (enforced on the survivors) enforced.
  const written = api.history("egresspolicies").slice(statusWritesBefore).map((e) => e.object.status as Status);
  assert.ok(written.length > 0, "statuses were written during the change");
  for (const s of written) {
    assert.ok((s.enforcedPods ?? 0) >= 2, `a status lost pods enforced elsewhere: ${JSON.stringify(s)}`);
    assert.ok(!(s.unenforced ?? []).some((u) => u.pod === "shop/web-2" || u.pod === "shop/web-3"), `web-2/web-3 reported unenforced: ${JSON.stringify(s)}`);
  }
  // No Event about the pods that stayed enforced; exactly one about the pod that lost its filter.
  assert.deepEqual(eventsOf(api).slice(eventsBefore).sort(), ["EgressNotEnforced:web-1"]);
  const cov = await next.coverage();
  assert.deepEqual(cov.replicas.find((r) => r.replica === "control-a")?.live, false, "control-a's bindings expired");

  // The new leader deletes the object of a replica gone for good (gcAfterMs after it expired).
  await eventually(() => !api.get("configmaps", "egret-system", "egret-coverage-control-a"), "control-a's object collected", 15_000);
  assert.ok(api.get("configmaps", "egret-system", "egret-coverage-control-b"), "live replicas' objects stay");
});

test("coverage peers: the payload round-trips, bad payloads are refused with the line, expiry follows this replica's clock", () => {
  const pods = new Map([["shop/web-1", 1], ["lab/nb-0", 2]]);
  assert.deepEqual([...decodeCoveragePods(encodeCoveragePods(pods))].sort(), [["lab/nb-0", 2], ["shop/web-1", 1]]);
  assert.deepEqual(encodeCoveragePods(pods), encodeCoveragePods(new Map([["lab/nb-0", 2], ["shop/web-1", 1]])), "the same set encodes to the same bytes");
  assert.throws(() => decodeCoveragePods(encodeCoveragePods(new Map([["no-slash", 1]]))), /line 1: expected "namespace\/name count"/);
  assert.throws(() => decodeCoveragePods(Buffer.from("not gzip")));

  let now = 1_000;
  let changes = 0;
  const peers = new PeerCoverage({ self: "me", now: () => now, onChange: () => changes++ });
  peers.upsert({ replica: "me", renewTime: "t0", leaseDurationMs: 100, pods: new Map([["shop/x", 1]]) });
  assert.equal(peers.filtersOf("shop/x"), 0, "this replica's own object is not counted (its live bindings are)");
  peers.upsert({ replica: "other", renewTime: "t0", leaseDurationMs: 100, pods: new Map([["shop/web-1", 1]]) });
  assert.equal(peers.filtersOf("shop/web-1"), 1);
  now += 90;
  peers.upsert({ replica: "other", renewTime: "t1", leaseDurationMs: 100, pods: new Map([["shop/web-1", 1]]) });
  const beforeIdle = changes;
  now += 90;
  assert.equal(peers.expire(), false, "renewed 90 ms ago: live");
  assert.equal(changes, beforeIdle, "a renewal that changes nothing counted costs no coverage pass");
  // The same renewTime seen again does not extend the lease (a stale watch replay).
  peers.upsert({ replica: "other", renewTime: "t1", leaseDurationMs: 100, pods: new Map([["shop/web-1", 1]]) });
  now += 20;
  assert.equal(peers.expire(), true, "not renewed for 110 ms: expired");
  assert.equal(peers.filtersOf("shop/web-1"), 0);
  assert.deepEqual(peers.expiredLongerThan(50), []);
  now += 60;
  assert.deepEqual(peers.expiredLongerThan(50), ["other"]);
  peers.upsert({ replica: "other", renewTime: "t2", leaseDurationMs: 100, pods: new Map([["shop/web-1", 1]]) });
  assert.equal(peers.filtersOf("shop/web-1"), 1, "a replica that renews again counts again");
});
