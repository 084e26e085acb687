// The scenario format's DNS modes and ServiceEntries (skipDnsModes with reasons, serviceEntries read
// by control's own parser, evidence/cluster expectations), and the mesh's stand-ins for istiod's
// allocator, the DNS proxy's name table and Envoy's per-VIP routes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseScenario, ScenarioError } from "../../src/mesh/scenario.js";
import { allocateAddresses, dnsNameTable, serviceRoutes, MESH_AUTOALLOCATE_PREFIX } from "../../src/mesh/service-entries.js";
import { auditMismatches, toAuditEntry } from "../../src/mesh/audit.js";

const BASE = `
name: sample
pods:
  - {name: app, namespace: shop}
steps:
  - connect: {client: openssl, to: api.example.test}
    pod: shop/app
    expect: {outcome: connected, verdict: allow, evidence: mesh-config, cluster: "outbound|443||api.example.test"}
`;

function problemsOf(text: string): string[] {
  try {
    parseScenario(text, "s.yaml");
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    return e.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail("expected the scenario to be rejected");
}

const se = (name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  ({ apiVersion: "networking.istio.io/v1", kind: "ServiceEntry", metadata: { name, namespace: "shop" }, spec: { ports: [{ number: 443, name: "tls", protocol: "TLS" }], resolution: "DNS", ...spec }, ...extra });

test("a scenario runs in every DNS mode unless it says why not", () => {
  assert.deepEqual(parseScenario(BASE, "s.yaml").skipDnsModes, {});
  const s = parseScenario(`${BASE}skipDnsModes: {dns-proxy: "it is about one specific resolver's answers"}\n`, "s.yaml");
  assert.deepEqual(s.skipDnsModes, { "dns-proxy": "it is about one specific resolver's answers" });
  assert.match(problemsOf(`${BASE}skipDnsModes: {dns-proxy: ""}\n`).join("\n"), /skipDnsModes\.dns-proxy: must say, in a sentence, why/);
  assert.match(problemsOf(`${BASE}skipDnsModes: {dnsproxy: "some reason here"}\n`).join("\n"), /unknown field "dnsproxy" \(did you mean "dns-proxy"\?\)/);
  assert.match(problemsOf(`${BASE}skipDnsModes: {dns-proxy: "some reason here", cluster-dns: "another reason here"}\n`).join("\n"), /leaves no DNS mode to run in/);
});

test("evidence and cluster expectations are read and checked", () => {
  const step = parseScenario(BASE, "s.yaml").steps[0]!;
  assert.ok(step.kind === "connect");
  assert.equal(step.expect.evidence, "mesh-config");
  assert.equal(step.expect.cluster, "outbound|443||api.example.test");
  assert.match(problemsOf(BASE.replace("evidence: mesh-config", "evidence: dns")).join("\n"), /evidence: must be one of pod-dns, mesh-config, none/);
  const entry = toAuditEntry({ verdict: "allow", evidence: "pod-dns", cluster: "" });
  assert.deepEqual(auditMismatches(entry, { evidence: "mesh-config" }), ["evidence: want mesh-config, got pod-dns"]);
  assert.deepEqual(auditMismatches(toAuditEntry({ verdict: "deny", evidence: "" }), { evidence: "none" }), []);
});

test("serviceEntries go through control's parser; shape mistakes are positioned", () => {
  const ok = parseScenario(`${BASE}serviceEntries:\n  - ${JSON.stringify(se("api", { hosts: ["api.example.test"], addresses: ["198.19.250.10"] }))}\n`, "s.yaml");
  assert.equal(ok.serviceEntries.length, 1);
  const bad = problemsOf(`${BASE}serviceEntries:\n  - {apiVersion: networking.istio.io/v2, kind: ServiceEntry, metadata: {name: x}, spec: {}}\n  - ${JSON.stringify(se("y", { hosts: [], resolution: "MAGIC" }))}\n`).join("\n");
  assert.match(bad, /serviceEntries\[0\]\.apiVersion: must be networking\.istio\.io\/v1/);
  assert.match(bad, /serviceEntries\[0\]\.metadata: metadata\.name and metadata\.namespace are required/);
  assert.match(bad, /serviceEntries\[1\]\.spec\.hosts: must list at least one host/);
  assert.match(bad, /serviceEntries\[1\]\.spec\.resolution: must be NONE, STATIC, DNS or DNS_ROUND_ROBIN/);
});

test("istiod's allocator stand-in: one address per host, only where istiod allocates", () => {
  const entries = allocateAddresses([
    se("explicit", { hosts: ["a.example.test"], addresses: ["198.19.250.10"] }),
    se("auto", { hosts: ["b.example.test", "c.example.test", "*.wild.example.test"] }),
    se("none", { hosts: ["d.example.test"], resolution: "NONE" }),
    se("optout", { hosts: ["e.example.test"] }, { metadata: { name: "optout", namespace: "shop", labels: { "networking.istio.io/enable-autoallocate-ip": "false" } } }),
    se("auto2", { hosts: ["f.example.test"] }),
  ]) as { status?: { addresses: { value: string; host: string }[] } }[];
  assert.equal(entries[0]!.status, undefined);
  assert.deepEqual(entries[1]!.status!.addresses, [{ value: `${MESH_AUTOALLOCATE_PREFIX}1`, host: "b.example.test" }, { value: `${MESH_AUTOALLOCATE_PREFIX}2`, host: "c.example.test" }]);
  assert.equal(entries[2]!.status, undefined);
  assert.equal(entries[3]!.status, undefined);
  assert.deepEqual(entries[4]!.status!.addresses, [{ value: `${MESH_AUTOALLOCATE_PREFIX}3`, host: "f.example.test" }]);
});

test("the DNS proxy's name table and the sidecar's VIP routes follow exportTo", () => {
  const entries = allocateAddresses([
    se("api", { hosts: ["api.example.test"], addresses: ["198.19.250.10"] }),
    se("db", { hosts: ["db.internal.test"], addresses: ["198.19.250.20"], resolution: "STATIC", endpoints: [{ address: "198.19.1.10", ports: { tls: 5432 } }], exportTo: ["."] }),
    se("storage", { hosts: ["storage.example.test"] }),
  ]);
  assert.deepEqual([...dnsNameTable(entries, "shop")], [["api.example.test", ["198.19.250.10"]], ["db.internal.test", ["198.19.250.20"]], ["storage.example.test", [`${MESH_AUTOALLOCATE_PREFIX}1`]]]);
  assert.deepEqual([...dnsNameTable(entries, "other").keys()], ["api.example.test", "storage.example.test"], "exportTo: . hides db from other namespaces");
  assert.deepEqual(serviceRoutes(entries, "shop"), [
    "198.19.250.10:443=outbound|443||api.example.test=api.example.test:443",
    "198.19.250.20:443=outbound|443||db.internal.test=198.19.1.10:5432",
    `${MESH_AUTOALLOCATE_PREFIX}1:443=outbound|443||storage.example.test=storage.example.test:443`,
  ]);
});
