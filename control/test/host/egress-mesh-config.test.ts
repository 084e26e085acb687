// Mesh-configuration evidence in the filter (built egret.wasm in the Node host, scripted control):
// names for a ServiceEntry address arrive marked NAME_SOURCE_MESH_CONFIG; the filter cross-checks
// them against Envoy's chosen cluster (xds.cluster_name, set by tcp_proxy once it picked the
// upstream); a policy may ignore such evidence; the report says which kind of evidence decided.
import { test } from "node:test";
import assert from "node:assert/strict";
import { egressWorld, eventually, clientHello, type World, type WorldOptions } from "./egress-fixture.js";
import type { Connection } from "../../src/host/index.js";

const VIP = "240.240.0.5";
const API_CLUSTER = "outbound|443||api.example.com";

const POLICY = (extra = "") => `
apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
${extra}
  rules:
    - name: api
      action: Allow
      to: {domains: [api.example.com]}
      ports: [{port: 443}]
    - name: partner
      action: Allow
      to: {domains: ["**.partner.example.net"]}
`;

async function withWorld(o: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await egressWorld(o);
  try { await fn(w); } finally { await w.close(); }
}

function settled(c: Connection): Promise<boolean> {
  return eventually(() => c.upstreamConnectRequested || c.closed, `connection to ${c.destination} to be decided`);
}

/** Opens a connection, lets tcp_proxy connect, sends `bytes`, and returns the reported event. */
async function judge(w: World, cluster: string | undefined, bytes: Buffer) {
  const before = w.control.events.length;
  const c = w.connect(`${VIP}:443`, cluster);
  await settled(c);
  if (!c.closed) c.downstreamData(bytes);
  const events = await w.events(before + 1);
  return { c, e: events[before] };
}

test("a ServiceEntry VIP is allowed by name on mesh-configuration evidence, cross-checked with Envoy's cluster", async () => {
  await withWorld({ policy: POLICY(), prepare: (c) => c.addMeshName(VIP, "api.example.com") }, async (w) => {
    const { c, e } = await judge(w, API_CLUSTER, clientHello("api.example.com"));
    assert.equal(e.verdict, "allow", JSON.stringify(e));
    assert.equal(e.matched_name, "api.example.com");
    assert.equal(e.evidence, "NAME_SOURCE_MESH_CONFIG");
    assert.equal(e.cluster, API_CLUSTER);
    assert.equal(c.closed, false);
    assert.equal(w.metric("egret_cluster_checks"), 1);
    // Without a TLS ClientHello (plain TCP to the VIP) the routed host is the name.
    const plain = await judge(w, API_CLUSTER, Buffer.from("hello\r\n"));
    assert.equal(plain.e.verdict, "allow", JSON.stringify(plain.e));
    assert.equal(plain.e.matched_name, "api.example.com");
  });
});

test("Envoy routing the VIP to a host the evidence does not name is denied cluster-unverified", async () => {
  await withWorld({ policy: POLICY(), prepare: (c) => c.addMeshName(VIP, "api.example.com") }, async (w) => {
    const { c, e } = await judge(w, "outbound|443||other.example.org", clientHello("api.example.com"));
    assert.equal(e.verdict, "deny", JSON.stringify(e));
    assert.equal(e.reason, "cluster-unverified");
    assert.equal(e.cluster, "outbound|443||other.example.org");
    await eventually(() => c.closed, "the connection to close");
    assert.equal(c.sentUpstream.length, 0, "no client byte reached the upstream");
  });
});

test("an SNI naming another host than the routed ServiceEntry host is refused", async () => {
  await withWorld({ policy: POLICY(), prepare: (c) => { c.addMeshName(VIP, "api.example.com"); c.addResolution(VIP, "x.partner.example.net", 253_402_300_799_000); } }, async (w) => {
    // The client claims a name the policy allows (and that even has evidence), but Envoy sends
    // the bytes to api.example.com's endpoints: the claim does not describe the destination.
    const { e } = await judge(w, API_CLUSTER, clientHello("x.partner.example.net"));
    assert.equal(e.verdict, "deny", JSON.stringify(e));
    assert.equal(e.reason, "cluster-unverified");
  });
});

test("a pod-DNS name aliasing a VIP cannot choose the name: Envoy's routed host decides", async () => {
  // The pod's resolver answered x.partner.example.net → the VIP of api.example.com's ServiceEntry
  // (anyone can publish such a record). Envoy routes the VIP to api.example.com: that is the name
  // judged. With port 8443 the api rule does not match, and the partner name must not rescue it.
  const policy = POLICY();
  await withWorld({ policy, resolutions: [[VIP, "x.partner.example.net", 300]], prepare: (c) => c.addMeshName(VIP, "api.example.com") }, async (w) => {
    const before = w.control.events.length;
    const c = w.connect(`${VIP}:8443`, "outbound|8443||api.example.com");
    await settled(c);
    if (!c.closed) c.downstreamData(Buffer.from("hello\r\n"));
    const e = (await w.events(before + 1))[before];
    assert.notEqual(e.verdict, "allow", JSON.stringify(e));
    assert.notEqual(e.matched_name, "x.partner.example.net");
  });
});

test("meshConfigEvidence: Ignore makes a policy judge on the pod's own DNS answers only", async () => {
  await withWorld({ policy: POLICY("  meshConfigEvidence: Ignore"), prepare: (c) => c.addMeshName(VIP, "api.example.com") }, async (w) => {
    const c = w.connect(`${VIP}:443`, API_CLUSTER);
    await settled(c);
    if (!c.closed) c.downstreamData(clientHello("api.example.com"));
    const e = (await w.events(1))[0];
    assert.equal(e.verdict, "deny", JSON.stringify(e));
    assert.ok(["unattributed", "sni-unverified", "default-deny"].includes(e.reason), e.reason);
    assert.equal(e.evidence, "NAME_SOURCE_UNSPECIFIED");
  });
});

test("pod-DNS evidence is reported as such, and no cluster check runs for it", async () => {
  await withWorld({ policy: POLICY(), resolutions: [["198.51.100.7", "api.example.com", 300]] }, async (w) => {
    const c = w.connect("198.51.100.7:443", API_CLUSTER);
    await settled(c);
    c.downstreamData(clientHello("api.example.com"));
    const e = (await w.events(1))[0];
    assert.equal(e.verdict, "allow", JSON.stringify(e));
    assert.equal(e.evidence, "NAME_SOURCE_POD_DNS");
    assert.equal(e.cluster, "");
    assert.equal(w.metric("egret_cluster_checks"), 0);
  });
});
