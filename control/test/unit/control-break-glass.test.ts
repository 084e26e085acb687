// Break glass: the namespace label egret.dev/break-glass turns enforcement into Monitor (or off)
// for one namespace, or mesh-wide on control's namespace; control pushes the new snapshot at once
// over Watch (no re-render, no pod restart); removing the label restores the policies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "../../src/common/log.js";
import { BREAK_GLASS_LABEL } from "../../src/control/break-glass.js";
import { WatchHub } from "../../src/control/hub.js";
import { createControlMetrics } from "../../src/control/metrics.js";
import { defaultPolicyApi } from "../../src/control/policy-api.js";
import { PolicyCatalog } from "../../src/control/policies.js";
import { PodRegistry } from "../../src/control/pods.js";
import { ResolutionStore } from "../../src/control/store.js";
import { PolicyEngine } from "../../src/policy/index.js";
import type { Outgoing, WatchResponse } from "../../src/proto/index.js";
import { eventually } from "../support/control-harness.js";

const MESH_NS = "egret-system";

function setup() {
  const registry = new PodRegistry();
  registry.setNamespace(MESH_NS, {});
  registry.setNamespace("shop", {});
  registry.setNamespace("lab", {});
  registry.upsertPod({ namespace: "shop", name: "web-1", labels: { app: "web" }, ips: ["198.18.1.10"] });
  registry.upsertPod({ namespace: "lab", name: "nb-1", labels: { app: "nb" }, ips: ["198.18.1.11"] });
  const catalog = new PolicyCatalog(defaultPolicyApi);
  for (const ns of ["shop", "lab"]) {
    catalog.applyObject({
      apiVersion: "egret.dev/v1alpha1", kind: "EgressPolicy", metadata: { name: "only-api", namespace: ns, generation: 1 },
      spec: { podSelector: {}, rules: [{ name: "api", action: "Allow", to: { domains: ["api.example.com"] } }] },
    });
  }
  const hub = new WatchHub({
    store: new ResolutionStore({}), registry, catalog, policyApi: defaultPolicyApi, log: silentLogger(), metrics: createControlMetrics(),
    epoch: "e1", breakGlassNamespace: MESH_NS,
  });
  const sent = new Map<string, Outgoing<WatchResponse>[]>();
  const subs = [["shop", "web-1"], ["lab", "nb-1"]].map(([namespace, name]) => {
    const list: Outgoing<WatchResponse>[] = [];
    sent.set(`${namespace}/${name}`, list);
    return hub.subscribe({ namespace: namespace!, name: name!, instanceId: "t" }, { send: (r) => (list.push(r), true), onDrain: () => undefined });
  });
  /** The verdict the pod's current snapshot gives a connection nothing allows. */
  const verdict = (ns: string, name: string): string => {
    const compiled = hub.compiledFor(ns, name);
    assert.ok(compiled, `${ns}/${name} compiled`);
    const engine = new PolicyEngine();
    engine.load(compiled.bytes);
    return engine.evaluate({ ip: "203.0.113.7", port: 443, names: ["evil.example.net"] }).verdict;
  };
  const close = () => { for (const s of subs) s.close(); hub.close(); };
  return { registry, hub, sent, verdict, close };
}

test("the label on control's namespace turns every policy into Monitor mesh-wide, pushed at once, and back", async () => {
  const { registry, sent, verdict, close } = setup();
  try {
    assert.equal(verdict("shop", "web-1"), "deny");
    assert.equal(verdict("lab", "nb-1"), "deny");
    const before = sent.get("shop/web-1")!.length;
    registry.setNamespace(MESH_NS, { [BREAK_GLASS_LABEL]: "monitor" });
    await eventually(() => verdict("shop", "web-1") === "would-deny" && verdict("lab", "nb-1") === "would-deny", "Monitor everywhere");
    await eventually(() => sent.get("shop/web-1")!.length > before, "a new policy pushed over Watch");
    assert.ok(sent.get("shop/web-1")!.slice(before).some((r) => (r.policy?.length ?? 0) > 0), "the push carries the recompiled policy");
    registry.setNamespace(MESH_NS, {});
    await eventually(() => verdict("shop", "web-1") === "deny" && verdict("lab", "nb-1") === "deny", "enforcement restored");
  } finally {
    close();
  }
});

test("exclude on one namespace stops enforcing only there; an unknown value is ignored", async () => {
  const { registry, hub, verdict, close } = setup();
  try {
    registry.setNamespace("lab", { [BREAK_GLASS_LABEL]: "exclude" });
    await eventually(() => hub.compiledFor("lab", "nb-1")?.selected === false, "lab excluded");
    assert.equal(verdict("lab", "nb-1"), "allow", "not enforced: the filter lets everything through");
    assert.equal(verdict("shop", "web-1"), "deny", "other namespaces untouched");
    registry.setNamespace("lab", { [BREAK_GLASS_LABEL]: "off-please" });
    await eventually(() => hub.compiledFor("lab", "nb-1")?.selected === true, "an invalid value does not exclude");
    assert.equal(verdict("lab", "nb-1"), "deny");
    registry.setNamespace(MESH_NS, { [BREAK_GLASS_LABEL]: "exclude" });
    await eventually(() => hub.compiledFor("shop", "web-1")?.selected === false, "mesh-wide exclude");
  } finally {
    close();
  }
});
