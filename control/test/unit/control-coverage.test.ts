// Enforcement coverage (control/src/control/coverage.ts) in Kubernetes mode against the in-test
// API server: for each pod a policy selects, whether a filter enforces it (a live Watch bound to
// the pod by its address) and, when not, why — in policy status (and its printer-column fields),
// /coverage and /status, metrics, and Kubernetes Events. The attack: a pod cannot make another
// pod look enforced by watching in its name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { ControlService } from "../../src/control/service.js";
import { KubeSource } from "../../src/k8s/index.js";
import { parsePodsFile } from "../../src/control/file-source.js";
import { podRecordOf } from "../../src/k8s/convert.js";
import type { V1Pod } from "@kubernetes/client-node";
import { FakeKube, kube } from "../support/fake-kube.js";
import { WatchClient, eventually, fromPod, loopbackOf } from "../support/control-harness.js";

const ipsOf = (ip: string) => [ip, loopbackOf({ ips: [ip] })];
const WEB1 = ipsOf("198.18.1.21");
const WEB2 = ipsOf("198.18.1.22");
const WEB3 = ipsOf("198.18.1.23");
const WEB4 = ipsOf("198.18.1.24");
const FILTERED = { "egret.dev/filter": "on" };

interface Status {
  selectedPods: number;
  enforcedPods?: number;
  unenforcedPods?: number;
  unenforced?: { pod: string; reason: string }[];
  conditions: { type: string; status: string; reason: string; message: string }[];
}

async function setup(t: import("node:test").TestContext) {
  const api = await new FakeKube().start();
  api.upsert("namespaces", kube.namespace("shop"));
  api.upsert("pods", kube.pod("shop", "web-1", WEB1, { app: "web", ...FILTERED }, { sidecar: true }));
  api.upsert("pods", kube.pod("shop", "web-2", WEB2, { app: "web", ...FILTERED }));
  api.upsert("pods", kube.pod("shop", "web-3", WEB3, { app: "web" }, { sidecar: "native" }));
  api.upsert("pods", kube.pod("shop", "web-4", WEB4, { app: "web", ...FILTERED }, { sidecar: true }));
  api.upsert("pods", kube.pod("shop", "job-1", ipsOf("198.18.1.25"), { app: "job" }, { sidecar: true }));
  api.upsert("egresspolicies", {
    apiVersion: "egret.dev/v1alpha1",
    kind: "EgressPolicy",
    metadata: { name: "web-egress", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action: "Allow", to: { domains: ["api.example.com"] } }] },
  });
  const source = new KubeSource({ kubeConfig: api.kubeConfig(), policyApi: defaultPolicyApi, log: silentLogger(), backoff: { initialMs: 20, maxMs: 200 }, statusDebounceMs: 10 });
  const service = new ControlService({
    policyApi: defaultPolicyApi,
    source,
    log: silentLogger(),
    grpcListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    audit: { write: () => undefined },
    filterSelector: FILTERED,
    coverageGraceMs: 0,
  });
  t.after(async () => {
    await service.stop();
    await api.stop();
  });
  const ports = await service.start();
  const status = () => api.get("egresspolicies", "shop", "web-egress")?.status as Status | undefined;
  const watchFrom = async (ips: string[], name: string) => {
    const f = await fromPod(`127.0.0.1:${ports.grpcPort}`, { ips });
    const w = new WatchClient(f.address, { namespace: "shop", name });
    t.after(() => (w.close(), f.close()));
    return w;
  };
  return { api, service, ports, status, watchFrom };
}

test("coverage: selected pods are enforced only while their filter's Watch is bound; each unenforced one has its reason (status, /coverage, metrics, Events)", async (t) => {
  const { api, service, ports, status, watchFrom } = await setup(t);
  await eventually(() => status()?.unenforcedPods === 4, "4 unenforced pods before any filter connects");
  const web1 = await watchFrom(WEB1, "web-1");
  await eventually(() => web1.responses.length >= 1, "web-1's snapshot");
  const s = await eventually(() => (status()?.enforcedPods === 1 ? status() : undefined), "web-1 enforced");
  assert.equal(s.selectedPods, 4, "job-1 is not selected");
  assert.equal(s.unenforcedPods, 3);
  assert.deepEqual(s.unenforced, [
    { pod: "shop/web-2", reason: "no-sidecar" },
    { pod: "shop/web-3", reason: "envoy-without-filter" },
    { pod: "shop/web-4", reason: "filter-not-connected" },
  ]);
  assert.equal(s.conditions[0].type, "Accepted", "Accepted stays the first condition (the Ready column)");
  const enforced = s.conditions.find((c) => c.type === "Enforced")!;
  assert.equal(enforced.status, "False");
  assert.equal(enforced.reason, "PodsNotEnforced");
  assert.match(enforced.message, /3 of 4 selected pods are not enforced \(1 no-sidecar, 1 envoy-without-filter, 1 filter-not-connected\)/);

  const coverage = (await (await fetch(`http://127.0.0.1:${ports.httpPort}/coverage?namespace=shop`)).json()) as {
    selected: number; enforced: number; notEnforced: number; byReason: Record<string, number>; pods: { pod: string; state: string; reason?: string; filters: number; policies: string[] }[];
  };
  assert.equal(coverage.selected, 4);
  assert.equal(coverage.enforced, 1);
  assert.deepEqual(coverage.byReason, { "no-sidecar": 1, "envoy-without-filter": 1, "filter-not-connected": 1 });
  assert.deepEqual(coverage.pods.map((p) => [p.pod, p.state, p.reason ?? "", p.filters]), [
    ["shop/web-2", "not-enforced", "no-sidecar", 0],
    ["shop/web-3", "not-enforced", "envoy-without-filter", 0],
    ["shop/web-4", "not-enforced", "filter-not-connected", 0],
    ["shop/web-1", "enforced", "", 1],
  ]);
  assert.deepEqual(coverage.pods[0].policies, ["EgressPolicy/shop/web-egress"]);
  const other = (await (await fetch(`http://127.0.0.1:${ports.httpPort}/coverage?namespace=other`)).json()) as { selected: number };
  assert.equal(other.selected, 0, "the namespace filter");
  const st = (await (await fetch(`http://127.0.0.1:${ports.httpPort}/status`)).json()) as { coverage: { notEnforced: number; unenforcedPods: { pod: string; reason: string }[] } };
  assert.equal(st.coverage.notEnforced, 3);
  assert.deepEqual(st.coverage.unenforcedPods.map((p) => p.reason), ["no-sidecar", "envoy-without-filter", "filter-not-connected"]);

  const metrics = await service.metrics.registry.metrics();
  assert.match(metrics, /egret_control_selected_pods 4/);
  assert.match(metrics, /egret_control_enforced_pods 1/);
  assert.match(metrics, /egret_control_unenforced_pods\{reason="no-sidecar"\} 1/);
  assert.match(metrics, /egret_control_unenforced_pods\{reason="envoy-without-filter"\} 1/);
  assert.match(metrics, /egret_control_unenforced_pods\{reason="filter-not-connected"\} 1/);

  type Ev = { reason: string; type: string; message: string; involvedObject: { name: string } };
  const events = await eventually(() => {
    const list = api.list("events") as unknown as Ev[];
    return list.some((e) => e.reason === "EgressEnforced") && list.filter((e) => e.reason === "EgressNotEnforced").length >= 4 ? list : undefined;
  }, "coverage Events");
  const notEnforced = events.filter((e) => e.reason === "EgressNotEnforced");
  assert.deepEqual(notEnforced.map((e) => e.involvedObject.name).sort(), ["web-1", "web-2", "web-3", "web-4"], "grace 0: every selected pod was announced before its filter connected");
  assert.ok(notEnforced.every((e) => e.type === "Warning"));
  assert.match(notEnforced.find((e) => e.involvedObject.name === "web-2")!.message, /\(no-sidecar\).*Selected by EgressPolicy\/shop\/web-egress/);
  const again = events.filter((e) => e.reason === "EgressEnforced");
  assert.deepEqual(again.map((e) => [e.involvedObject.name, e.type]), [["web-1", "Normal"]]);

  // The filter goes away: web-1 is not enforced any more.
  web1.close();
  await eventually(() => status()?.enforcedPods === 0, "web-1 unenforced after its Watch ended");
  assert.deepEqual(status()!.unenforced!.find((u) => u.pod === "shop/web-1"), { pod: "shop/web-1", reason: "filter-not-connected" });
});

test("coverage attack: a pod watching in another pod's name is refused and does not make that pod count as enforced", async (t) => {
  const { status, watchFrom } = await setup(t);
  // web-4 (filter not connected) watches as web-1: PERMISSION_DENIED (bound by peer address).
  const forged = await watchFrom(WEB4, "web-1");
  await eventually(() => forged.error, "the forged Watch refused");
  assert.equal(forged.error!.code, 7, "PERMISSION_DENIED");
  // Twin: web-4 watching as itself counts.
  const own = await watchFrom(WEB4, "web-4");
  await eventually(() => own.responses.length >= 1, "web-4's own snapshot");
  const s = await eventually(() => (status()?.enforcedPods === 1 ? status() : undefined), "web-4 enforced");
  assert.ok(s.unenforced!.some((u) => u.pod === "shop/web-1" && u.reason === "filter-not-connected"), "web-1 stays unenforced");
  assert.ok(!s.unenforced!.some((u) => u.pod === "shop/web-4"));
});

test("coverage: the pods file's `sidecar:` says whether a pod runs a sidecar; anything but a boolean is an error naming the field", () => {
  const { pods } = parsePodsFile("pods:\n  - {name: a, namespace: shop, ip: 198.18.1.30, sidecar: false}\n  - {name: b, namespace: shop, ip: 198.18.1.31}\n", "pods.yaml");
  assert.equal(pods[0].sidecar, false);
  assert.equal(pods[1].sidecar, undefined);
  assert.throws(() => parsePodsFile("pods:\n  - {name: a, namespace: shop, ip: 198.18.1.30, sidecar: \"no\"}\n", "pods.yaml"), /pods\.yaml:2:.*sidecar.*not true or false/);
});

test("coverage: a Pod's sidecar (istio-proxy container, native sidecar, or Istio's status annotation) and its outbound exclusions, from the Kubernetes object", () => {
  const pod = (extra: object) => ({ metadata: { name: "p", namespace: "shop", ...extra }, spec: { containers: [{ name: "app" }] }, status: { phase: "Running", podIP: "198.18.1.9" } }) as unknown as V1Pod;
  assert.equal(podRecordOf(pod({}))!.sidecar, false);
  assert.equal(podRecordOf({ ...pod({}), spec: { containers: [{ name: "app" }, { name: "istio-proxy" }] } } as V1Pod)!.sidecar, true);
  assert.equal(podRecordOf({ ...pod({}), spec: { containers: [{ name: "app" }], initContainers: [{ name: "istio-proxy", restartPolicy: "Always" }] } } as V1Pod)!.sidecar, true);
  assert.equal(podRecordOf(pod({ annotations: { "sidecar.istio.io/status": "{}" } }))!.sidecar, true);
  const excluded = podRecordOf(pod({ annotations: { "traffic.sidecar.istio.io/excludeOutboundPorts": "5432, 6379,bad,70000", "traffic.sidecar.istio.io/excludeOutboundIPRanges": "203.0.113.0/24,nonsense" } }))!;
  assert.deepEqual(excluded.excludedOutboundPorts, [5432, 6379], "malformed entries are ignored, as istio-iptables rejects them");
  assert.deepEqual(excluded.excludedOutboundRanges, ["203.0.113.0/24"]);
});
