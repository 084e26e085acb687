// Two replicas of egret control in Kubernetes mode against one in-test API server, electing a
// leader on the Lease egret-system/egret-control: both serve filters, only the leader writes
// policy status; when the leader stops, the other takes over and reconciles every status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import { KubeSource, LeaderElector, kubeLeaseClient } from "../../src/k8s/index.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { WatchClient, eventually, fromPod, loopbackOf } from "../support/control-harness.js";

const WEB_IPS = ["198.18.1.10", loopbackOf({ ips: ["198.18.1.10"] })];

function policy(domains: string[]) {
  return {
    apiVersion: "egret.dev/v1alpha1",
    kind: "EgressPolicy",
    metadata: { name: "web-egress", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action: "Allow", to: { domains } }] },
  };
}

async function replica(t: import("node:test").TestContext, api: FakeKube, identity: string) {
  const kc = api.kubeConfig();
  // Each replica's requests carry its own bearer token, so the test can tell who wrote.
  kc.users[0] = { ...kc.users[0]!, token: `token-${identity}` };
  const leader = new LeaderElector({
    client: kubeLeaseClient(kc, "egret-system", "egret-control"),
    identity,
    name: "egret-control",
    namespace: "egret-system",
    timing: { leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 100 },
    log: silentLogger(),
  });
  const source = new KubeSource({ kubeConfig: kc, policyApi: defaultPolicyApi, log: silentLogger(), backoff: { initialMs: 20, maxMs: 200 }, statusDebounceMs: 10, leader });
  const service = new ControlService({ policyApi: defaultPolicyApi, source, log: silentLogger(), grpcListen: "127.0.0.1:0", audit: { write: () => undefined } });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await service.stop();
  };
  t.after(stop);
  const { grpcPort } = await service.start();
  return { leader, service, grpcPort, stop };
}

test("leader election: both replicas serve, only the leader writes status; on failover the other takes over and reconciles", async (t) => {
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  api.upsert("namespaces", kube.namespace("shop"));
  api.upsert("pods", kube.pod("shop", "web-1", WEB_IPS, { app: "web" }));
  api.upsert("egresspolicies", policy(["api.example.com"]));
  const a = await replica(t, api, "control-a");
  await eventually(() => a.leader.isLeader, "control-a leads");
  const b = await replica(t, api, "control-b");
  type Status = { observedGeneration?: number; conditions?: { status: string }[] };
  const status = () => api.get("egresspolicies", "shop", "web-egress")?.status as Status | undefined;
  await eventually(() => status()?.observedGeneration === 1, "status written");
  const writers = () => new Set(api.requests.filter((r) => r.method === "PATCH" && r.collection === "egresspolicies").map((r) => r.user));
  // Both replicas serve filters.
  for (const r of [a, b]) {
    const f = await fromPod(`127.0.0.1:${r.grpcPort}`, { ips: WEB_IPS });
    t.after(() => f.close());
    const w = new WatchClient(f.address, { namespace: "shop", name: "web-1" });
    t.after(() => w.close());
    await eventually(() => w.responses.length > 0, "a snapshot from each replica");
    assert.equal(w.selected, true);
  }
  api.upsert("egresspolicies", policy(["api.example.com", "b.example.com"]));
  await eventually(() => status()?.observedGeneration === 2, "status of generation 2");
  await new Promise((r) => setTimeout(r, 300)); // b's debounce has passed too
  assert.equal(b.leader.isLeader, false);
  assert.deepEqual([...writers()], ["Bearer token-control-a"], "only the leader wrote status");
  assert.equal(await b.service.metrics.leader.get().then((m) => m.values[0]?.value), 0);

  // The leader stops (it releases the Lease); b takes over and reconciles generation 3.
  await a.stop();
  await eventually(() => b.leader.isLeader, "control-b leads", 10_000);
  api.upsert("egresspolicies", policy(["c.example.com"]));
  await eventually(() => status()?.observedGeneration === 3, "status of generation 3, written by b");
  assert.ok(writers().has("Bearer token-control-b"));
  assert.equal((api.get("leases", "egret-system", "egret-control")?.spec as { holderIdentity?: string }).holderIdentity, "control-b");
});
