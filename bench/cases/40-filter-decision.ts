// Filter decision per new connection: the built egret.wasm in the Node proxy-wasm host, a policy
// of 50 rules, 1,000 resolutions known to the pod's table; each connection is opened (host
// creates the stream context, reads destination.address, the filter looks up the names, evaluates
// the engine and continues) and closed (on_downstream_connection_close, on_done, on_log,
// on_delete). Baseline: the same host driving the minimal filter (the host's own per-connection
// cost), so the difference is what Egret's decision adds.
import { fileURLToPath } from "node:url";
import { EnvoyHost, ManualClock } from "../../control/src/host/index.js";
import { egressWorld } from "../../control/test/host/egress-fixture.js";
import { loadPolicyText, compilePodSnapshot } from "../../control/src/policy/index.js";
import { PolicyEngine } from "../../control/src/policy/engine.js";
import { timePerCall, type BenchCase, type Figure } from "../harness.js";

const MINIMAL = fileURLToPath(new URL("../../../filter/build/test/host_minimal.wasm", import.meta.url));

function fiftyRulePolicy(): string {
  const rules: string[] = [];
  for (let i = 0; i < 24; i++) rules.push(`    - {name: deny-${i}, action: Deny, to: {domains: ["**.blocked${i}.example.org"]}}`);
  for (let i = 0; i < 24; i++) rules.push(`    - {name: cidr-${i}, action: Allow, to: {cidrs: [{cidr: 198.19.${i}.0/24}]}, ports: [{port: 6379}]}`);
  rules.push(`    - {name: api-tls, action: Allow, to: {domains: ["*.api.example.com"]}, ports: [{port: 443}]}`);
  rules.push(`    - {name: catch-all-alert, action: Alert, to: {external: true}}`);
  return `apiVersion: egret.dev/v1alpha1
kind: EgressPolicy
metadata: {name: fifty, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  rules:
${rules.join("\n")}
`;
}

export const benchCase: BenchCase = {
  name: "filter decision per new connection (Node host, egret.wasm)",
  async run(ctx) {
    const resolutions: Array<[string, string, number]> = [];
    for (let i = 0; i < 1000; i++) resolutions.push([`203.0.${i >> 8}.${i & 0xff}`, `svc${i}.api.example.com`, 3600]);
    const w = await egressWorld({ policy: fiftyRulePolicy(), resolutions, config: { reportIntervalMs: 1000 } });
    const batch = Math.max(500, Math.round(5000 * ctx.scale));
    let i = 0;
    let denied = 0;
    const egret = timePerCall(() => {
      const k = i++ % 1000;
      const c = w.connect(`203.0.${k >> 8}.${k & 0xff}:443`);
      if (!c.upstreamConnectRequested) denied++;
      c.downstreamClose();
    }, batch, 21);
    await w.close();
    if (denied) throw new Error(`${denied} connections to resolved, allowed names were not decided at once`);

    const host = await EnvoyHost.create({ wasm: MINIMAL, concurrency: 1, clock: new ManualClock(), node: { name: "web-0", namespace: "shop", labels: { app: "web" }, instanceIps: ["10.1.0.7"] } });
    let j = 0;
    const base = timePerCall(() => {
      const c = host.openConnection({ source: `10.1.0.7:${40000 + (j % 20000)}`, destination: `203.0.${((j % 1000) >> 8)}.${(j++ % 1000) & 0xff}:443` });
      c.downstreamClose();
    }, batch, 21);
    await host.close();
    // The engine alone, inside wasm (no JS boundary per evaluation): 50 rules, 1,000 candidates.
    const { policies } = loadPolicyText(fiftyRulePolicy(), "bench.yaml");
    const snap = compilePodSnapshot(policies, { name: "web-0", namespace: "shop", labels: { app: "web" } }, { "kubernetes.io/metadata.name": "shop" });
    const engine = new PolicyEngine();
    engine.load(snap.bytes);
    const manyNames = Array.from({ length: 1000 }, (_, k) => `svc${k}.cdn${k % 13}.example.net`);
    manyNames[999] = "svc999.api.example.com";
    const times = Math.max(20_000, Math.round(200_000 * ctx.scale));
    const oneName = { ip: "203.0.0.7", port: 443, names: ["svc7.api.example.com"] };
    const thousand = { ip: "203.0.0.7", port: 443, names: manyNames };
    const perEval = (req: typeof oneName) => {
      const r = engine.repeat(req, 100);
      if (r.verdict !== "allow") throw new Error(`engine said ${r.verdict}/${r.reason}`);
      const t0 = process.hrtime.bigint();
      engine.repeat(req, times);
      return Number(process.hrtime.bigint() - t0) / times;
    };
    const engineOne = Math.min(perEval(oneName), perEval(oneName));
    const engineThousand = Math.min(perEval(thousand), perEval(thousand)) ;
    ctx.log("policy: 50 rules, deciding rule #49; 1,000 resolutions; every connection decided in on_new_connection");
    const figures: Figure[] = [{
      name: "open + decide + close, one connection", value: egret / 1000, unit: "µs",
      baseline: { name: "same host, minimal filter", value: base / 1000, unit: "µs" },
      target: "≤ 3 µs incl. host calls (Envoy); here the JS host's own cost dominates",
      meetsTarget: (egret - base) / 1000 <= 3,
      extra: { addedByEgretUs: (egret - base) / 1000 },
    }, {
      name: "policy engine alone in wasm: 50 rules, deciding rule #49, 1 candidate name", value: engineOne, unit: "ns",
      target: "≤ 3 µs for the whole decision", meetsTarget: engineOne <= 3000,
    }, {
      name: "policy engine alone in wasm: 50 rules, 1,000 candidate names (shared IP)", value: engineThousand / 1000, unit: "µs",
      baseline: { name: "1 candidate name", value: engineOne / 1000, unit: "µs" },
      // 10 µs on a quiet machine, where one name takes about 0.9 µs: read against the same run's
      // 1-name figure (×11) when the machine is loaded.
      target: "≤ 10 µs (≤ ×11 of 1 name on a loaded machine)", meetsTarget: engineThousand / 1000 <= 10 || engineThousand / engineOne <= 11,
      extra: { ratioToOneName: engineThousand / engineOne },
    }];
    return figures;
  },
};
