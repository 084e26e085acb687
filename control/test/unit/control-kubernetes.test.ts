// Kubernetes mode against an in-test API server speaking real list/watch over HTTP, driven by
// @kubernetes/client-node informers exactly as in production: sync and readiness, deltas for
// policy / pod label / namespace label changes, policy status (Accepted / Invalid keeping the
// previous version), 410 Gone and relist, dropped watches, supervised restart after errors,
// rate-limited deny Events.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../../src/common/log.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import { KubeSource } from "../../src/k8s/index.js";
import { createFilterClient, ipToBytes } from "../../src/proto/index.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { WatchClient, eventually, fromPod, loopbackOf } from "../support/control-harness.js";

const POLICY_GVK = { apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy" };

function policy(domains: string[], action = "Allow") {
  return {
    ...POLICY_GVK,
    metadata: { name: "web-egress", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action, to: { domains } }] },
  };
}

function clusterPolicy() {
  return {
    apiVersion: "egret.dev/v1alpha1",
    kind: "ClusterEgressPolicy",
    metadata: { name: "team-shop" },
    spec: {
      tier: "Baseline",
      namespaceSelector: { matchLabels: { team: "shop" } },
      podSelector: { matchLabels: { tier: "batch" } },
      rules: [{ action: "Deny", to: { domains: ["**.example.org"] } }],
    },
  };
}

// Each pod's second address is its loopback "network namespace" here: its filter's calls come from it.
const WEB_IPS = ["198.18.1.10", loopbackOf({ ips: ["198.18.1.10"] })];
const JOB_IPS = ["198.18.1.11", loopbackOf({ ips: ["198.18.1.11"] })];

async function fromPodOf(t: import("node:test").TestContext, grpcPort: number, ips: string[]): Promise<string> {
  const f = await fromPod(`127.0.0.1:${grpcPort}`, { ips });
  t.after(() => f.close());
  return f.address;
}

async function setup(t: import("node:test").TestContext, seed = true, listTimeoutMs?: number, staleAfterMs = 0) {
  const api = await new FakeKube().start();
  if (seed) {
    api.upsert("namespaces", kube.namespace("shop", { team: "shop" }));
    api.upsert("pods", kube.pod("shop", "web-1", WEB_IPS, { app: "web" }));
    api.upsert("pods", kube.pod("shop", "job-1", JOB_IPS, { tier: "batch" }));
    api.upsert("pods", kube.pod("shop", "node-exporter", "198.18.0.1", { app: "web" }, { hostNetwork: true }));
    api.upsert("egresspolicies", policy(["api.example.com"]));
    api.upsert("clusteregresspolicies", clusterPolicy());
  }
  const source = new KubeSource({
    kubeConfig: api.kubeConfig(),
    policyApi: defaultPolicyApi,
    log: silentLogger(),
    backoff: { initialMs: 20, maxMs: 200, staleAfterMs },
    statusDebounceMs: 10,
    listTimeoutMs,
    eventLimits: { perKeyIntervalMs: 60_000 },
  });
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source,
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    audit: { write: () => undefined },
  });
  t.after(async () => {
    await service.stop();
    await api.stop();
  });
  return { api, source, service };
}

test("syncs, serves snapshots, and turns policy, pod-label and namespace-label changes into deltas", async (t) => {
  const { api, service } = await setup(t);
  const { grpcPort } = await service.start();
  assert.equal(service.notReadyReason(), undefined);
  assert.equal(service.registry.byIp("198.18.1.10")?.name, "web-1");
  assert.equal(service.registry.get("shop", "node-exporter"), undefined, "host-network pods have no IP of their own");

  const web = new WatchClient(await fromPodOf(t, grpcPort, WEB_IPS), { namespace: "shop", name: "web-1" });
  const job = new WatchClient(await fromPodOf(t, grpcPort, JOB_IPS), { namespace: "shop", name: "job-1" });
  t.after(() => (web.close(), job.close()));
  await eventually(() => web.responses.length >= 1 && job.responses.length >= 1, "both snapshots");
  assert.equal(web.selected, true);
  assert.equal(job.selected, true, "the ClusterEgressPolicy selects job-1 through its namespace label");
  const webHash = web.policyHash;
  const jobCount = job.responses.length;

  // Policy edit: only web-1's policy changes.
  api.upsert("egresspolicies", policy(["api.example.com", "*.cdn.example.net"]));
  await eventually(() => web.policyHash !== webHash, "web-1's policy delta");
  assert.equal(web.responses.at(-1)!.type, "WATCH_RESPONSE_TYPE_DELTA");
  // Namespace label change: unselects job-1 (and sends web-1 nothing new about selection).
  api.upsert("namespaces", kube.namespace("shop", { team: "other" }));
  await eventually(() => !job.selected, "job-1 to be unselected");
  assert.equal(job.responses.length, jobCount + 1, "job-1 got exactly one delta: the namespace change (not web-1's policy edit)");
  // Pod label change.
  api.upsert("pods", kube.pod("shop", "web-1", WEB_IPS, { app: "api" }));
  await eventually(() => !web.selected, "web-1 to be unselected");
  assert.equal(web.responses.at(-1)!.type, "WATCH_RESPONSE_TYPE_DELTA");
});

test("writes policy status, and an invalid edit keeps the previous version in force", async (t) => {
  const { api, service, source } = await setup(t);
  const { grpcPort } = await service.start();
  type Status = { selectedPods: number; ruleCount: number; observedGeneration: number; conditions: { type: string; status: string; reason: string; message: string }[] };
  const statusOf = (coll: "egresspolicies" | "clusteregresspolicies", ns: string | undefined, name: string) => api.get(coll, ns, name)?.status as Status | undefined;
  await eventually(() => statusOf("egresspolicies", "shop", "web-egress")?.conditions?.[0]?.status === "True", "Accepted=True");
  const s1 = statusOf("egresspolicies", "shop", "web-egress")!;
  assert.equal(s1.selectedPods, 1);
  assert.equal(s1.ruleCount, 1);
  assert.equal(s1.observedGeneration, 1);
  assert.equal(s1.conditions[0].reason, "Accepted");
  await eventually(() => statusOf("clusteregresspolicies", undefined, "team-shop")?.selectedPods === 1, "the cluster policy's status");

  const web = new WatchClient(await fromPodOf(t, grpcPort, WEB_IPS), { namespace: "shop", name: "web-1" });
  t.after(() => web.close());
  await eventually(() => web.responses.length >= 1, "the snapshot");
  const hash = web.policyHash;

  api.upsert("egresspolicies", policy(["api.example.com"], "Permit"));
  await eventually(() => statusOf("egresspolicies", "shop", "web-egress")?.conditions[0].status === "False", "Accepted=False");
  const s2 = statusOf("egresspolicies", "shop", "web-egress")!;
  assert.equal(s2.conditions[0].reason, "InvalidPreviousInForce");
  assert.match(s2.conditions[0].message, /action/);
  assert.match(s2.conditions[0].message, /previous valid version of this policy stays in force/);
  assert.equal(s2.observedGeneration, 2);
  assert.equal(s2.selectedPods, 1, "the version in force still selects web-1");
  assert.equal(service.hub.compiledFor("shop", "web-1")!.hash, hash, "the previous policy is still served");
  await source.flushStatus();
  const writes = api.requests.filter((r) => r.method === "PATCH").length;
  // Status writes come back as watch events; they must not cause more writes.
  api.dropWatches();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(api.requests.filter((r) => r.method === "PATCH").length, writes, "no status write loop");
});

test("recovers from 410 Gone by relisting, including deletions it missed", async (t) => {
  for (const goneAs of ["event", "status"] as const) {
    await t.test(`410 delivered as ${goneAs}`, async (t2) => {
      const { api, service } = await setup(t2);
      api.goneAs = goneAs;
      await service.start();
      const listsBefore = api.requests.filter((r) => r.collection === "pods" && !r.watch).length;
      // While the client's watch is stalled, a pod is deleted and another added; then history is
      // compacted and the stalled watch dropped: the client's resourceVersion is now too old.
      api.pauseWatches("pods");
      api.delete("pods", "shop", "job-1");
      api.upsert("pods", kube.pod("shop", "web-2", "198.18.1.12", { app: "web" }));
      api.compact();
      api.dropWatches();
      await eventually(() => service.registry.get("shop", "web-2") !== undefined && service.registry.get("shop", "job-1") === undefined, "the relisted state");
      assert.ok(api.requests.some((r) => r.collection === "pods" && r.watch && r.status === 410), "the watch got 410 Gone");
      assert.ok(api.requests.filter((r) => r.collection === "pods" && !r.watch).length > listsBefore, "the client relisted");
      assert.equal(service.registry.byIp("198.18.1.11"), undefined);
    });
  }
});

test("an informer that fails is restarted (supervised), and ready waits for the first list", async (t) => {
  const { api, service } = await setup(t);
  api.failNext("pods", false, 500, 2); // the first two lists fail
  const started = service.start();
  await eventually(() => api.requests.filter((r) => r.collection === "pods" && r.status === 500).length >= 1, "a failed list");
  assert.match(service.notReadyReason() ?? "", /initial sync/);
  await started;
  assert.equal(service.notReadyReason(), undefined);
  assert.ok(service.registry.get("shop", "web-1"));

  // A watch that fails with a non-410 error stops client-node's informer; the supervisor restarts it.
  api.failNext("pods", true, 500, 1);
  api.dropWatches();
  await eventually(() => api.requests.some((r) => r.collection === "pods" && r.watch && r.status === 500), "the failed watch");
  api.upsert("pods", kube.pod("shop", "web-3", "198.18.1.13", { app: "web" }));
  await eventually(() => service.registry.get("shop", "web-3"), "the change after the restart");
  const metrics = await service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_informer_restarts_total\{resource="pods"\} [1-9]/);
});

test("denies become rate-limited Kubernetes Events on the pod", async (t) => {
  const { api, service } = await setup(t);
  const { grpcPort } = await service.start();
  const client = createFilterClient(await fromPodOf(t, grpcPort, WEB_IPS));
  t.after(() => client.close());
  const deny = {
    pod_namespace: "shop",
    pod_name: "web-1",
    source_ip: ipToBytes("198.18.1.10"),
    destination_ip: ipToBytes("203.0.113.9"),
    destination_port: 5432,
    names: ["db.example.org"],
    protocol: "postgresql",
    verdict: "VERDICT_DENY" as const,
    reason: "REASON_DEFAULT_DENY" as const,
    policy: "shop/web-egress",
  };
  await new Promise<void>((resolve, reject) => {
    const call = client.Report(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
    call.write({ events: [deny, deny, deny, { ...deny, verdict: "VERDICT_ALLOW", reason: "REASON_ALLOWED" }] });
    call.end();
  });
  await eventually(() => api.list("events").length >= 1, "the Event");
  await new Promise((r) => setTimeout(r, 100));
  const events = api.list("events") as unknown as { reason: string; message: string; type: string; involvedObject: { kind: string; name: string; namespace: string } }[];
  assert.equal(events.length, 1, "three identical denies make one Event; allows make none");
  assert.equal(events[0].reason, "EgressDenied");
  assert.equal(events[0].type, "Warning");
  assert.deepEqual({ ...events[0].involvedObject, apiVersion: undefined }, { apiVersion: undefined, kind: "Pod", name: "web-1", namespace: "shop" });
  assert.match(events[0].message, /203\.0\.113\.9:5432 \(db\.example\.org\) \[postgresql\]: default-deny by shop\/web-egress/);
  const metrics = await service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_kubernetes_events_total\{outcome="rate_limited"\} 2/);
});

test("a list that never answers times out and is retried, so the service still becomes ready", async (t) => {
  const { api, service } = await setup(t, true, 300);
  api.failNext("pods", false, 0, 1); // the first pods list hangs
  await service.start();
  assert.equal(service.notReadyReason(), undefined);
  assert.ok(service.registry.get("shop", "web-1"));
  assert.ok(api.requests.filter((r) => r.collection === "pods" && !r.watch).length >= 2, "the list was retried");
});

test("an API outage: control keeps serving the last state, marked stale (condition, metric, readiness), and reconciles when the API returns", async (t) => {
  const { api, service } = await setup(t, true, 500, 150);
  const { grpcPort, httpPort } = await service.start();
  const web = new WatchClient(await fromPodOf(t, grpcPort, WEB_IPS), { namespace: "shop", name: "web-1" });
  t.after(() => web.close());
  await eventually(() => web.responses.length >= 1 && web.selected, "web-1's snapshot");
  const hash = web.policyHash;

  // The API goes away for every resource, lists and watches alike.
  for (const c of ["namespaces", "pods", "egresspolicies", "clusteregresspolicies"] as const) api.failNext(c, "any", 503, 1_000_000);
  api.dropWatches();
  await eventually(() => service.status() && (service.status() as { conditions: { status: string }[] }).conditions[0]!.status === "False", "the stale condition");
  const status = service.status() as { ready: string; conditions: { type: string; status: string; reason?: string; message?: string }[] };
  assert.equal(status.ready, "ready", "still Ready: filters keep their control plane");
  assert.deepEqual([status.conditions[0]!.type, status.conditions[0]!.reason], ["KubernetesSynced", "ApiUnreachable"]);
  assert.match(status.conditions[0]!.message ?? "", /Kubernetes API unreachable: .*stale since .*serving the last known state/);
  assert.match(await service.metrics.registry.metrics(), /egret_control_kubernetes_stale 1/);
  const readyz = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  assert.equal(readyz.status, 200);
  assert.match(await readyz.text(), /^ready \(stale: Kubernetes API unreachable/);
  // Still serving the last known state: a new filter gets web-1's policy.
  const late = new WatchClient(await fromPodOf(t, grpcPort, WEB_IPS), { namespace: "shop", name: "web-1" });
  t.after(() => late.close());
  await eventually(() => late.responses.length >= 1, "a snapshot during the outage");
  assert.equal(late.policyHash, hash);

  // Changes made meanwhile are picked up when the API returns.
  api.upsert("egresspolicies", policy(["api.example.com", "*.cdn.example.net"]));
  api.clearFaults();
  await eventually(() => web.policyHash !== hash, "the policy edited during the outage", 10_000);
  try {
    await eventually(() => (service.status() as { conditions: { status: string }[] }).conditions[0]!.status === "True", "fresh again");
  } catch (err) {
    assert.fail(`${(err as Error).message}: ${JSON.stringify((service.status() as { conditions: unknown[] }).conditions)}`);
  }
  assert.match(await service.metrics.registry.metrics(), /egret_control_kubernetes_stale 0/);
});
