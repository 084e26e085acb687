// Mesh configuration as evidence: ServiceEntries → address table (spec.addresses, istiod's
// status.addresses, exportTo visibility), its way into Watch and Lookup, the file loader and the
// Kubernetes informer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../src/common/log.js";
import { ControlError } from "../../src/control/errors.js";
import { WatchHub } from "../../src/control/hub.js";
import { LookupService } from "../../src/control/lookup.js";
import { MeshConfigTable, MESH_CONFIG_EXPIRY_MS, parseServiceEntry, visibleFrom, withMeshNames } from "../../src/control/mesh-config.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { PolicyCatalog } from "../../src/control/policies.js";
import { PodRegistry } from "../../src/control/pods.js";
import { loadServiceEntryFiles, parseServiceEntryText } from "../../src/control/service-entry-files.js";
import { ControlService } from "../../src/control/service.js";
import { ResolutionStore } from "../../src/control/store.js";
import { KubeSource } from "../../src/k8s/index.js";
import type { Outgoing, Resolution, WatchResponse } from "../../src/proto/index.js";
import { bytesToIp, ipToBytes } from "../../src/proto/index.js";
import { FakeKube, kube } from "../support/fake-kube.js";
import { WatchClient, eventually, fromPod, loopbackOf } from "../support/control-harness.js";

function se(namespace: string, name: string, spec: Record<string, unknown>, extra: { status?: unknown; labels?: Record<string, string> } = {}) {
  return {
    apiVersion: "networking.istio.io/v1",
    kind: "ServiceEntry",
    metadata: { name, namespace, ...(extra.labels ? { labels: extra.labels } : {}) },
    spec,
    ...(extra.status ? { status: extra.status } : {}),
  };
}

const names = (r: Resolution | undefined) => (r?.names ?? []).map((n) => n.name);

test("spec.addresses: every host gets every address; a one-address CIDR counts, ranges and wildcards do not", () => {
  const e = parseServiceEntry(
    se("shop", "partners", {
      hosts: ["API.example.com.", "billing.example.com", "*.cdn.example.com"],
      addresses: ["198.18.200.1", "198.18.200.2/32", "198.18.201.0/24", "2001:db8::7/128", "not-an-ip"],
      resolution: "DNS",
    }),
  );
  assert.ok(typeof e !== "string");
  assert.deepEqual([...e.addresses.keys()].sort(), ["198.18.200.1", "198.18.200.2", "2001:db8::7"]);
  assert.deepEqual(e.addresses.get("198.18.200.1")!.hosts, ["api.example.com", "billing.example.com"]);
  assert.equal(e.ignored.length, 3, e.ignored.join("; "));
  assert.match(e.ignored.join("\n"), /wildcard/);
  assert.match(e.ignored.join("\n"), /198\.18\.201\.0\/24/);
  assert.equal(parseServiceEntry({ metadata: { name: "x" } }), "metadata.name and metadata.namespace are required");
});

test("status.addresses (istiod auto-allocation) count only where istiod uses them", () => {
  const status = { addresses: [{ value: "240.240.0.5", host: "api.example.com" }, { value: "2001:2::5", host: "api.example.com" }, { value: "240.240.0.6", host: "other.example.org" }] };
  const spec = { hosts: ["api.example.com"], resolution: "DNS" };
  const used = parseServiceEntry(se("shop", "api", spec, { status }));
  assert.ok(typeof used !== "string");
  assert.deepEqual([...used.addresses.keys()].sort(), ["2001:2::5", "240.240.0.5"]);
  assert.match(used.ignored.join(), /other\.example\.org.*not a host of this ServiceEntry/);
  // resolution NONE: istiod neither allocates nor uses allocated addresses.
  const none = parseServiceEntry(se("shop", "api", { ...spec, resolution: "NONE" }, { status }));
  assert.ok(typeof none !== "string" && none.addresses.size === 0);
  // The opt-out label.
  const optedOut = parseServiceEntry(se("shop", "api", spec, { status, labels: { "networking.istio.io/enable-autoallocate-ip": "False" } }));
  assert.ok(typeof optedOut !== "string" && optedOut.addresses.size === 0);
  // Declared addresses win: status is never read then.
  const declared = parseServiceEntry(se("shop", "api", { ...spec, addresses: ["198.18.200.9"] }, { status }));
  assert.ok(typeof declared !== "string");
  assert.deepEqual([...declared.addresses.keys()], ["198.18.200.9"]);
});

test("exportTo: '*', '.', '~', namespace lists, and the mesh default", () => {
  assert.equal(visibleFrom(["*"], "shop", "lab"), true);
  assert.equal(visibleFrom(["."], "shop", "shop"), true);
  assert.equal(visibleFrom(["."], "shop", "lab"), false);
  assert.equal(visibleFrom(["~"], "shop", "shop"), false);
  assert.equal(visibleFrom(["lab", "."], "shop", "lab"), true);
  assert.equal(visibleFrom(["lab"], "shop", "shop"), false);

  const table = new MeshConfigTable();
  table.upsert(se("shop", "private", { hosts: ["private.example.com"], addresses: ["198.18.200.1"], exportTo: ["."] }));
  table.upsert(se("shop", "shared", { hosts: ["shared.example.com"], addresses: ["198.18.200.1"] }));
  table.upsert(se("shop", "hidden", { hosts: ["hidden.example.com"], addresses: ["198.18.200.2"], exportTo: ["~"] }));
  assert.deepEqual(names(table.resolutionFor("shop", "198.18.200.1")), ["private.example.com", "shared.example.com"]);
  assert.deepEqual(names(table.resolutionFor("lab", "198.18.200.1")), ["shared.example.com"]);
  assert.equal(table.resolutionFor("shop", "198.18.200.2"), undefined);
  const r = table.resolutionFor("lab", ipToBytes("198.18.200.1"))!;
  assert.equal(r.names[0].source, "NAME_SOURCE_MESH_CONFIG");
  assert.equal(r.names[0].config_ref, "shop/shared");
  assert.equal(r.names[0].expires_unix_ms, MESH_CONFIG_EXPIRY_MS);

  // meshConfig.defaultServiceExportTo: ["."] makes an unset exportTo namespace-private.
  const privateByDefault = new MeshConfigTable({ defaultExportTo: ["."] });
  privateByDefault.upsert(se("shop", "shared", { hosts: ["shared.example.com"], addresses: ["198.18.200.1"] }));
  assert.equal(privateByDefault.resolutionFor("lab", "198.18.200.1"), undefined);
  assert.deepEqual(names(privateByDefault.resolutionFor("shop", "198.18.200.1")), ["shared.example.com"]);
});

test("changes report the addresses before and after; delete and replaceAll drop what is gone", () => {
  const table = new MeshConfigTable();
  const seen: string[][] = [];
  table.onChange((ips) => seen.push([...ips.keys()].sort()));
  table.upsert(se("shop", "api", { hosts: ["api.example.com"], addresses: ["198.18.200.1"] }));
  table.upsert(se("shop", "api", { hosts: ["api.example.com"], addresses: ["198.18.200.2"] }));
  table.delete("shop", "api");
  assert.deepEqual(seen, [["198.18.200.1"], ["198.18.200.1", "198.18.200.2"], ["198.18.200.2"]]);
  assert.equal(table.resolutionFor("shop", "198.18.200.2"), undefined);
  table.upsert(se("shop", "a", { hosts: ["a.example.com"], addresses: ["198.18.200.3"] }));
  seen.length = 0;
  const problems = table.replaceAll([se("shop", "b", { hosts: ["b.example.com", "*.x.example.com"], addresses: ["198.18.200.4"] })]);
  assert.deepEqual(seen, [["198.18.200.3", "198.18.200.4"]], "one change for the whole reload");
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^shop\/b: host \*\.x\.example\.com/);
  assert.equal(table.size, 1);
});

test("withMeshNames keeps the pod's own DNS names and adds only the mesh names it lacks", () => {
  const ip = ipToBytes("198.18.200.1");
  const pod: Resolution = { ip, names: [{ name: "api.example.com", cname_chain: [], expires_unix_ms: 1000, source: "NAME_SOURCE_POD_DNS", config_ref: "", ech_public_names: [] }], expires_unix_ms: 1000 };
  const mesh: Resolution = {
    ip,
    names: [
      { name: "api.example.com", cname_chain: [], expires_unix_ms: MESH_CONFIG_EXPIRY_MS, source: "NAME_SOURCE_MESH_CONFIG", config_ref: "shop/x", ech_public_names: [] },
      { name: "b.example.com", cname_chain: [], expires_unix_ms: MESH_CONFIG_EXPIRY_MS, source: "NAME_SOURCE_MESH_CONFIG", config_ref: "shop/x", ech_public_names: [] },
    ],
    expires_unix_ms: MESH_CONFIG_EXPIRY_MS,
  };
  const merged = withMeshNames(pod, mesh)!;
  assert.deepEqual(names(merged), ["api.example.com", "b.example.com"]);
  assert.equal(merged.names[0].source, "NAME_SOURCE_POD_DNS", "the pod's DNS name stays pod DNS");
  assert.equal(merged.names[0].expires_unix_ms, 1000);
  assert.equal(merged.names[1].source, "NAME_SOURCE_MESH_CONFIG");
  assert.equal(withMeshNames(undefined, mesh), mesh);
  assert.equal(withMeshNames(pod, undefined), pod);
});

test("Watch: a pod's snapshot carries the ServiceEntry addresses it may see; edits become deltas", async () => {
  const metrics = createControlMetrics();
  const store = new ResolutionStore({});
  const registry = new PodRegistry();
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: {}, ips: ["198.18.1.10"] });
  registry.upsertPod({ namespace: "lab", name: "nb-1", labels: {}, ips: ["198.18.1.11"] });
  const meshConfig = new MeshConfigTable();
  meshConfig.upsert(se("shop", "api", { hosts: ["api.example.com"], addresses: ["198.18.200.1"], exportTo: ["."] }));
  const hub = new WatchHub({ store, registry, catalog: new PolicyCatalog(defaultPolicyApi), policyApi: defaultPolicyApi, log: silentLogger(), metrics, meshConfig });
  const shop: Outgoing<WatchResponse>[] = [];
  const lab: Outgoing<WatchResponse>[] = [];
  const subs = [
    hub.subscribe({ namespace: "shop", name: "web-1", instanceId: "a" }, { send: (r) => (shop.push(r), true), onDrain: () => undefined }),
    hub.subscribe({ namespace: "lab", name: "nb-1", instanceId: "b" }, { send: (r) => (lab.push(r), true), onDrain: () => undefined }),
  ];
  try {
    assert.deepEqual(shop[0].upserts!.map((u) => bytesToIp(u!.ip!)), ["198.18.200.1"]);
    assert.equal(shop[0].upserts![0]!.names![0]!.source, "NAME_SOURCE_MESH_CONFIG");
    assert.equal(lab[0].upserts!.length, 0, "exportTo: . hides it from another namespace");
    // The pod's own DNS answer for the address keeps its source; the mesh name is added.
    store.record(ipToBytes("198.18.1.10"), { queryName: "alias.example.com", cnameChain: [], answers: [{ ip: ipToBytes("198.18.200.1"), ttlSeconds: 60 }], observedUnixMs: Date.now() });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(shop[1].upserts![0]!.names!.map((n) => [n!.name, n!.source]), [["alias.example.com", "NAME_SOURCE_POD_DNS"], ["api.example.com", "NAME_SOURCE_MESH_CONFIG"]]);
    // Exported to everyone: the lab pod gets an upsert; deleting it: removals.
    meshConfig.upsert(se("shop", "api", { hosts: ["api.example.com"], addresses: ["198.18.200.1"] }));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(lab.at(-1)!.upserts!.map((u) => names(u as Resolution)), [["api.example.com"]]);
    meshConfig.delete("shop", "api");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(lab.at(-1)!.removals!.map((b) => bytesToIp(b!)), ["198.18.200.1"]);
    assert.deepEqual(shop.at(-1)!.upserts!.map((u) => names(u as Resolution)), [["alias.example.com"]], "the pod's own DNS name stays");
  } finally {
    for (const s of subs) s.close();
    hub.close();
  }
});

test("Lookup answers a ServiceEntry address at once, for the namespaces it is exported to", async () => {
  const store = new ResolutionStore({});
  const registry = new PodRegistry();
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: {}, ips: ["198.18.1.10"] });
  registry.upsertPod({ namespace: "lab", name: "nb-1", labels: {}, ips: ["198.18.1.11"] });
  const meshConfig = new MeshConfigTable();
  meshConfig.upsert(se("shop", "api", { hosts: ["api.example.com"], addresses: ["198.18.200.1"], exportTo: ["."] }));
  const lookups = new LookupService(store, registry, createControlMetrics(), { maxPending: 10 }, Date.now, meshConfig);
  try {
    const a = await lookups.lookup(ipToBytes("198.18.1.10"), ipToBytes("198.18.200.1"), 5_000);
    assert.equal(a.result, "LOOKUP_RESULT_FOUND");
    assert.deepEqual(names(a.resolution), ["api.example.com"]);
    const b = await lookups.lookup(ipToBytes("198.18.1.11"), ipToBytes("198.18.200.1"), 0);
    assert.equal(b.result, "LOOKUP_RESULT_NOT_FOUND", "not exported to lab");
  } finally {
    lookups.close();
  }
});

test("ServiceEntry files: documents and Lists load; mistakes name the file and line", () => {
  const dir = mkdtempSync(join(tmpdir(), "egret-se-"));
  try {
    writeFileSync(
      join(dir, "a.yaml"),
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec: {hosts: [api.example.com], addresses: [198.18.200.1]}\n---\n" +
        "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: networking.istio.io/v1beta1\n    kind: ServiceEntry\n    metadata: {name: b, namespace: shop}\n    spec: {hosts: [b.example.com]}\n",
    );
    writeFileSync(join(dir, "ignored.txt"), "not yaml: [");
    const objs = loadServiceEntryFiles([dir]);
    assert.equal(objs.length, 2);
    assert.throws(
      () => parseServiceEntryText("apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: y}\n", "se.yaml"),
      (e: unknown) => e instanceof ControlError && e.code === "EGRET_SERVICE_ENTRY_FILE_INVALID" && /: se\.yaml:1:1: expected kind ServiceEntry/.test(e.message),
    );
    assert.throws(
      () => parseServiceEntryText("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\n", "se.yaml"),
      /metadata\.name and metadata\.namespace are required/,
    );
    assert.throws(() => parseServiceEntryText("a: [\n", "bad.yaml"), /bad\.yaml:\d+:\d+: not valid YAML/);
    assert.throws(() => loadServiceEntryFiles([join(dir, "missing.yaml")]), /cannot read .*missing\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Kubernetes mode watches ServiceEntries (status.addresses too) and streams them to watched pods", async (t) => {
  const api = await new FakeKube().start();
  api.upsert("namespaces", kube.namespace("shop", {}));
  // The pod's second address is its loopback "network namespace": its filter's calls come from it.
  const WEB = { ips: ["198.18.1.10"] };
  api.upsert("pods", kube.pod("shop", "web-1", [...WEB.ips, loopbackOf(WEB)], { app: "web" }));
  api.upsert("serviceentries", se("shop", "api", { hosts: ["api.example.com"], resolution: "DNS" }, { status: { addresses: [{ value: "240.240.0.5", host: "api.example.com" }] } }));
  const source = new KubeSource({
    kubeConfig: api.kubeConfig(),
    policyApi: defaultPolicyApi,
    log: silentLogger(),
    backoff: { initialMs: 20, maxMs: 200, staleAfterMs: 0 },
    writeStatus: false,
  });
  const service = new ControlService({ policyApi: defaultPolicyApi, source, log: silentLogger(), grpcListen: "127.0.0.1:0", audit: { write: () => undefined } });
  t.after(async () => {
    await service.stop();
    await api.stop();
  });
  const { grpcPort } = await service.start();
  const fromWeb = await fromPod(`127.0.0.1:${grpcPort}`, WEB);
  const web = new WatchClient(fromWeb.address, { namespace: "shop", name: "web-1" });
  t.after(() => (web.close(), fromWeb.close()));
  await eventually(() => web.responses.length >= 1, "snapshot");
  const ipsOf = (r: WatchResponse) => r.upserts.map((u) => `${bytesToIp(u.ip)}=${u.names.map((n) => `${n.name}/${n.source}`).join(",")}`);
  assert.deepEqual(ipsOf(web.responses[0]), ["240.240.0.5=api.example.com/NAME_SOURCE_MESH_CONFIG"]);
  api.upsert("serviceentries", se("shop", "api", { hosts: ["api.example.com"], resolution: "DNS", addresses: ["198.18.200.1"] }));
  await eventually(() => web.responses.length >= 2, "delta after the edit");
  const d = web.responses.at(-1)!;
  assert.deepEqual(ipsOf(d), ["198.18.200.1=api.example.com/NAME_SOURCE_MESH_CONFIG"]);
  assert.deepEqual(d.removals.map((b) => bytesToIp(b)), ["240.240.0.5"]);
});
