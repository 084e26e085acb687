// Unit tests of the control service's parts: pods file parsing, the hub's back-pressure and
// coalescing, deny Event rate limiting, policy status computation, informer give-up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { ControlError } from "../../src/control/errors.js";
import { parsePodsFile } from "../../src/control/file-source.js";
import { WatchHub } from "../../src/control/hub.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { PolicyCatalog } from "../../src/control/policies.js";
import { PodRegistry } from "../../src/control/pods.js";
import { ResolutionStore } from "../../src/control/store.js";
import type { AuditRecord } from "../../src/control/reports.js";
import type { Outgoing, WatchResponse } from "../../src/proto/index.js";
import { bytesToIp, ipToBytes } from "../../src/proto/index.js";
import { DenyEventRecorder, PolicyStatusWriter, type KubeEvent } from "../../src/k8s/index.js";
import { eventually } from "../support/control-harness.js";

test("the pods file parser accepts the documented format and canonicalizes IPs", () => {
  const r = parsePodsFile(
    "namespaces:\n  - name: shop\n    labels: {team: shop}\npods:\n  - {name: web-1, namespace: shop, ips: ['198.18.1.10', '2001:DB8::0:1'], labels: {app: web, replicas: 3}}\n  - {name: job-1, namespace: batch, ip: 198.18.1.11}\n",
    "pods.yaml",
  );
  assert.deepEqual(r.pods[0], { namespace: "shop", name: "web-1", labels: { app: "web", replicas: "3" }, ips: ["198.18.1.10", "2001:db8::1"] });
  assert.deepEqual(r.pods[1].ips, ["198.18.1.11"]);
  assert.deepEqual(r.namespaces, { shop: { team: "shop" }, batch: {} });
});

test("the pods file accepts ip and ips together when they agree, as a Pod's podIP and podIPs", () => {
  const r = parsePodsFile("pods:\n  - {name: a, namespace: s, ip: '2001:DB8::1', ips: ['2001:db8::1', 198.18.1.12]}\n", "pods.yaml");
  assert.deepEqual(r.pods[0]!.ips, ["2001:db8::1", "198.18.1.12"]);
});

test("the pods file parser names file, line, column and field for each kind of mistake", () => {
  const cases: [string, RegExp][] = [
    ["pods: [\n", /^.*f\.yaml:\d+:\d+: not valid YAML/],
    ["- a\n", /f\.yaml:1:1: \(document\): expected a mapping/],
    ["pod: []\n", /f\.yaml:1:1: pod: unknown key "pod"/],
    ["pods:\n  - {namespace: shop, ip: 198.18.1.1}\n", /pods\[0\]\.name: a pod needs a `name`/],
    ["pods:\n  - name: a\n    namespace: Shop\n    ip: 198.18.1.1\n", /f\.yaml:3:16: pods\[0\]\.namespace: a pod needs a `namespace`/],
    ["pods:\n  - {name: a, namespace: s}\n", /pods\[0\]: a pod needs at least one IP/],
    ["pods:\n  - {name: a, namespace: s, ips: [1.2.3]}\n", /pods\[0\]\.ips\[0\]: "1\.2\.3" is not an IP address/],
    ["pods:\n  - {name: a, namespace: s, ip: 1.2.3.4, ips: [1.2.3.5]}\n", /pods\[0\]\.ip: ip 1\.2\.3\.4 disagrees with ips \[1\.2\.3\.5\].*first of `ips`/],
    ["pods:\n  - {name: a, namespace: s, ip: '2001:db8::1', ips: [1.2.3.5, '2001:db8::1']}\n", /pods\[0\]\.ip: ip 2001:db8::1 disagrees/],
    ["pods:\n  - {name: a, namespace: s, ip: 1.2.3.4}\n  - {name: b, namespace: s, ip: 1.2.3.4}\n", /pods\[1\]\.ip: IP 1\.2\.3\.4 is also the IP of s\/a/],
    ["pods:\n  - {name: a, namespace: s, ip: 1.2.3.4}\n  - {name: a, namespace: s, ip: 1.2.3.5}\n", /pod s\/a is listed twice/],
    ["pods:\n  - {name: a, namespace: s, ip: 1.2.3.4, labels: [x]}\n", /labels must be a mapping/],
    ["pods:\n  - {name: a, namespace: s, ip: 1.2.3.4, image: x}\n", /f\.yaml:2:42: pods\[0\]\.image: unknown key "image"/],
    ["namespaces: {shop: {}}\n", /namespaces: must be a list/],
  ];
  for (const [text, expected] of cases) {
    assert.throws(
      () => parsePodsFile(text, "f.yaml"),
      (err: unknown) => {
        assert.ok(err instanceof ControlError, String(err));
        assert.equal(err.code, "EGRET_PODS_FILE_INVALID");
        assert.match(err.message, expected, JSON.stringify(text));
        return true;
      },
    );
  }
});

test("a blocked Watch subscriber gets one coalesced delta after drain, with the union of changes", async () => {
  const metrics = createControlMetrics();
  const store = new ResolutionStore({});
  const registry = new PodRegistry();
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: {}, ips: ["198.18.1.10"] });
  const catalog = new PolicyCatalog(defaultPolicyApi);
  const hub = new WatchHub({ store, registry, catalog, policyApi: defaultPolicyApi, log: silentLogger(), metrics, epoch: "e1" });
  const sent: Outgoing<WatchResponse>[] = [];
  let writable = false;
  let drain: () => void = () => undefined;
  const sub = hub.subscribe(
    { namespace: "shop", name: "web-1", instanceId: "t" },
    { send: (r) => (sent.push(r), writable), onDrain: (cb) => (drain = cb) },
  );
  assert.equal(sent.length, 1, "the snapshot is sent even though the buffer is then full");
  assert.equal(sent[0].type, "WATCH_RESPONSE_TYPE_SNAPSHOT");
  const record = (name: string, ip: string) =>
    store.record(ipToBytes("198.18.1.10"), { queryName: name, cnameChain: [], answers: [{ ip: ipToBytes(ip), ttlSeconds: 60 }], observedUnixMs: Date.now() });
  record("a.example.com", "192.0.2.1");
  await new Promise((r) => setImmediate(r));
  record("b.example.com", "192.0.2.2");
  await new Promise((r) => setImmediate(r));
  store.dropPod("198.18.1.10"); // both gone again… then one comes back
  record("c.example.com", "192.0.2.3");
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1, "nothing is written while blocked");
  writable = true;
  drain();
  assert.equal(sent.length, 2);
  const d = sent[1];
  assert.equal(d.type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.equal(d.base_version, sent[0].version);
  assert.deepEqual(d.upserts!.map((u) => bytesToIp(u!.ip!)), ["192.0.2.3"]);
  assert.deepEqual(d.removals!.map((ip) => bytesToIp(ip!)).sort(), ["192.0.2.1", "192.0.2.2"]);
  sub.close();
  hub.close();
});

test("deny Events: one per key per interval with the suppressed count, and a global token bucket", async () => {
  const posted: KubeEvent[] = [];
  const clock = { t: 1_000_000 };
  const metrics = createControlMetrics();
  const rec = new DenyEventRecorder({ createEvent: async (e) => void posted.push(e) }, silentLogger(), metrics, {
    now: () => clock.t,
    limits: { perKeyIntervalMs: 60_000, ratePerSecond: 1, burst: 2 },
  });
  const audit = (dst: string, verdict = "deny"): AuditRecord => ({
    kind: "egret.verdict", time: "", pod: "shop/web-1", src: "", dst, names: [], protocol: "", sni: "", host: "",
    verdict, reason: "default-deny", policy: "shop/p", rule: "", mode: "enforce", matched_name: "", instance: "", detail: "", evidence: "", cluster: "",
  });
  rec.denied(audit("192.0.2.1:443"));
  rec.denied(audit("192.0.2.1:443"));
  rec.denied(audit("192.0.2.1:443"));
  rec.denied(audit("192.0.2.2:443"));
  rec.denied(audit("192.0.2.3:443")); // bucket empty (burst 2)
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(posted.map((e) => e.message.match(/to (\S+):/)![1]), ["192.0.2.1:443", "192.0.2.2:443"]);
  clock.t += 61_000;
  rec.denied(audit("192.0.2.1:443", "would-deny"));
  rec.denied(audit("192.0.2.1:443"));
  await new Promise((r) => setImmediate(r));
  assert.equal(posted.length, 4);
  assert.equal(posted[2].reason, "EgressWouldDeny");
  assert.equal(posted[3].count, 3, "the two suppressed denies are counted into the next Event");
  assert.match(posted[3].message, /3 times since/);
});

test("policy status: Accepted with selected pods; Invalid keeps the previous version and says so", async () => {
  const registry = new PodRegistry();
  registry.setNamespace("shop", {});
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: { app: "web" }, ips: ["198.18.1.10"] });
  registry.upsertPod({ namespace: "shop", name: "web-2", labels: { app: "web" }, ips: ["198.18.1.11"] });
  registry.upsertPod({ namespace: "shop", name: "db-1", labels: { app: "db" }, ips: ["198.18.1.12"] });
  const catalog = new PolicyCatalog(defaultPolicyApi);
  const writes: { key: string; status: { selectedPods: number; conditions: { status: string; reason: string; message: string }[] } }[] = [];
  const writer = new PolicyStatusWriter({
    client: { patchStatus: async (kind, ns, name, status) => void writes.push({ key: `${kind}/${ns}/${name}`, status }) },
    catalog, registry, policyApi: defaultPolicyApi, log: silentLogger(), metrics: createControlMetrics(), debounceMs: 1,
  });
  const obj = (action: string, generation: number) => ({
    apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "p", namespace: "shop", generation },
    spec: { podSelector: { matchLabels: { app: "web" } }, rules: [{ action, to: { domains: ["a.example.com"] } }] },
  });
  catalog.applyObject(obj("Allow", 1));
  await eventually(() => writes.length === 1, "the first status");
  assert.equal(writes[0].status.selectedPods, 2);
  assert.deepEqual([writes[0].status.conditions[0].status, writes[0].status.conditions[0].reason], ["True", "Accepted"]);
  catalog.applyObject(obj("Allow", 1));
  await writer.flush();
  assert.equal(writes.length, 1, "an unchanged status is not rewritten");
  catalog.applyObject(obj("Maybe", 2));
  await eventually(() => writes.length === 2, "the invalid status");
  const c = writes[1].status.conditions[0];
  assert.deepEqual([c.status, c.reason], ["False", "InvalidPreviousInForce"]);
  assert.equal(catalog.active().length, 1, "the previous version stays in force");
  registry.deletePod("shop", "web-2");
  await eventually(() => writes.length === 3, "the selected-pods update");
  assert.equal(writes[2].status.selectedPods, 1);
  writer.close();
});

test("a supervised informer restarts with backoff, marks itself stale after a bounded outage, and keeps retrying", async (t) => {
  const { FakeKube } = await import("../support/fake-kube.js");
  const { SupervisedInformer } = await import("../../src/k8s/index.js");
  const { CoreV1Api } = await import("@kubernetes/client-node");
  const api = await new FakeKube().start();
  t.after(() => api.stop());
  api.failNext("namespaces", "any", 503, 1_000_000);
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  let restarts = 0;
  let staleErr: unknown;
  const inf = new SupervisedInformer({
    name: "namespaces",
    kubeConfig: kc,
    path: "/api/v1/namespaces",
    list: () => core.listNamespace(),
    onUpsert: () => undefined,
    onDelete: () => undefined,
    log: silentLogger(),
    onRestart: () => restarts++,
    onStale: (err) => (staleErr = err),
    backoff: { initialMs: 10, maxMs: 40, staleAfterMs: 300 },
  });
  t.after(() => inf.stop());
  void inf.start();
  await eventually(() => staleErr !== undefined, "the informer to mark itself stale");
  assert.ok(restarts >= 2, `restarted ${restarts} times before going stale`);
  assert.ok(inf.staleSince !== undefined);
  assert.equal(inf.synced, false);
  assert.match(inf.lastError ?? "", /503|Service Unavailable|injected/i);
  const before = restarts;
  await eventually(() => restarts > before, "retries continue after going stale");
});

test("every catalogued error maps to a gRPC status at the edge and keeps its code and cause", async () => {
  const grpc = await import("@grpc/grpc-js");
  const { ERROR_CATALOGUE, asControlError } = await import("../../src/control/errors.js");
  const { toStatus } = await import("../../src/control/grpc-server.js");
  for (const code of Object.keys(ERROR_CATALOGUE) as (keyof typeof ERROR_CATALOGUE)[]) {
    assert.match(code, /^EGRET_[A-Z_]+$/);
    const st = toStatus(new ControlError(code, "detail"));
    assert.ok(typeof st.code === "number" && st.code !== grpc.status.OK && st.code !== grpc.status.UNKNOWN, code);
    assert.match(st.details ?? "", new RegExp(`^${code}: .+: detail$`));
    assert.deepEqual(st.metadata!.get("egret-error-code"), [code]);
  }
  const cause = new TypeError("boom");
  const wrapped = asControlError(cause);
  assert.equal(wrapped.code, "EGRET_INTERNAL");
  assert.equal(wrapped.cause, cause);
  assert.equal(toStatus(cause).code, grpc.status.INTERNAL);
});

test("the one metric list: every declared metric is exported on /metrics", async () => {
  const metrics = createControlMetrics();
  const text = await metrics.registry.metrics();
  for (const [field, metric] of Object.entries(metrics)) {
    if (field === "registry") continue;
    const name = (metric as unknown as { name: string }).name;
    assert.match(name, /^egret_control_[a-z_]+$/, field);
    assert.ok(text.includes(`# HELP ${name} `), `${name} is not exported`);
  }
});

test("file mode watches folders recursively and picks up a policy folder created after start", async (t) => {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { FileSource } = await import("../../src/control/file-source.js");
  const { egressPolicy, podsYaml } = await import("../support/control-harness.js");
  const dir = mkdtempSync(join(tmpdir(), "egE-files-"));
  const catalog = new PolicyCatalog(defaultPolicyApi);
  const registry = new PodRegistry();
  let reloads = 0;
  const source = new FileSource({
    policyPaths: [join(dir, "policies")],
    podsFile: join(dir, "pods.yaml"),
    catalog, registry, policyApi: defaultPolicyApi, log: silentLogger(), metrics: createControlMetrics(), debounceMs: 20,
    onReload: () => reloads++,
  });
  t.after(() => {
    source.close();
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, "pods.yaml"), podsYaml([{ name: "web-1", namespace: "shop", ips: ["198.18.1.10"], labels: { app: "web" } }]));
  source.start();
  assert.equal(catalog.active().length, 0, "the policy folder does not exist yet");
  mkdirSync(join(dir, "policies", "team-a"), { recursive: true });
  await eventually(() => reloads >= 1, "a reload after the folder appeared", 10_000);
  writeFileSync(join(dir, "policies", "team-a", "web.yaml"), egressPolicy("web-egress", "shop", { app: "web" }, ["api.example.com"]));
  await eventually(() => catalog.active().length === 1, "the policy in the nested folder", 10_000);
  assert.equal(registry.get("shop", "web-1")?.ips[0], "198.18.1.10");
});

test("measureLookupLatency runs real Lookups (known, and released by an observation) and summarizes them", async () => {
  const { measureLookupLatency } = await import("../../src/control/measure.js");
  const r = await measureLookupLatency({ samples: 40, warmup: 5 });
  assert.equal(r.known.samples, 40);
  assert.equal(r.afterWait.samples, 10);
  for (const s of [r.known, r.afterWait]) {
    assert.ok(s.p50Ms > 0 && s.p50Ms <= s.p90Ms && s.p90Ms <= s.p99Ms && s.p99Ms <= s.maxMs && Number.isFinite(s.maxMs));
  }
});

test("informer errors are described with what to check", async () => {
  const { describe } = await import("../../src/k8s/supervise.js");
  const http = (code: number) => Object.assign(new Error("HTTP-Code: " + code), { code });
  assert.match(describe(http(403), "/api/v1/pods"), /RBAC must allow list\/watch/);
  assert.match(describe(http(404), "/apis/egret.dev/v1alpha1/egresspolicies"), /is the CRD installed/);
  assert.match(describe(http(401), "/api/v1/pods"), /token was refused/);
  assert.match(describe(Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } }), "/api/v1/pods"), /ECONNREFUSED reaching the API server/);
});

test("the pods file parser only ever throws its own catalogued error, whatever the text", async () => {
  const fc = (await import("fast-check")).default;
  const yamlish = fc.oneof(
    fc.string(),
    fc.constantFrom("pods:\n  - name: a\n    namespace: s\n    ip: ", "namespaces:\n  - name: ", "pods: {}", "pods: [1, 2]", "pods:\n  - []\n", "namespaces:\n  - {name: 7}\n", "pods:\n  - {name: a, namespace: s, ips: 5}\n", "!!binary x", "&a [*a]"),
  );
  fc.assert(
    fc.property(fc.array(yamlish, { maxLength: 4 }), (parts) => {
      try {
        parsePodsFile(parts.join(""), "f.yaml");
      } catch (err) {
        assert.ok(err instanceof ControlError && err.code === "EGRET_PODS_FILE_INVALID", String(err));
      }
    }),
    { numRuns: 1500 },
  );
});

test("the hub keeps its own copy of changed IPs (a caller may reuse its answer buffer)", async () => {
  const metrics = createControlMetrics();
  const store = new ResolutionStore({});
  const registry = new PodRegistry();
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: {}, ips: ["198.18.1.10"] });
  const hub = new WatchHub({ store, registry, catalog: new PolicyCatalog(defaultPolicyApi), policyApi: defaultPolicyApi, log: silentLogger(), metrics });
  const sent: Outgoing<WatchResponse>[] = [];
  const sub = hub.subscribe({ namespace: "shop", name: "web-1", instanceId: "t" }, { send: (r) => (sent.push(r), true), onDrain: () => undefined });
  const answer = { ip: ipToBytes("192.0.2.1"), ttlSeconds: 60 };
  store.record(ipToBytes("198.18.1.10"), { queryName: "a.example.com", cnameChain: [], answers: [answer], observedUnixMs: Date.now() });
  answer.ip.set(ipToBytes("192.0.2.2"));
  store.record(ipToBytes("198.18.1.10"), { queryName: "b.example.com", cnameChain: [], answers: [answer], observedUnixMs: Date.now() });
  await new Promise((r) => setImmediate(r));
  const d = sent[1];
  assert.equal(d.type, "WATCH_RESPONSE_TYPE_DELTA");
  assert.deepEqual(d.upserts!.map((u) => bytesToIp(u!.ip!)).sort(), ["192.0.2.1", "192.0.2.2"]);
  assert.equal(d.removals!.length, 0);
  sub.close();
  hub.close();
});
