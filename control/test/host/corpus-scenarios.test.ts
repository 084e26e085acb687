// The mesh scenarios as the project's mesh recorded them (corpus/scenarios, scripts/record-corpus
// scenarios): every scenario has its capture, pods and policies, and `egret simulate` over the
// capture — the real DNS observer, control and egret.wasm — gives every connection the live mesh
// let through the verdict the mesh's audit log gave it. Present in every clone: never skipped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { loadScenarioDir } from "../../src/mesh/scenario.js";
import { scenarioPodIps, type ScenarioTruth } from "../../src/corpus/scenarios.js";
import { simulateCapture, type SimulatedConnection } from "../../src/simulate/replay.js";
import { silentLogger } from "../../src/common/log.js";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
const CORPUS = join(ROOT, "corpus/scenarios");
const scenarios = loadScenarioDir(join(ROOT, "istio-tests/scenarios"));
/** Connections compared with the live mesh's verdict, over every recorded scenario. */
let compared = 0;

/** The verdict as the audit log writes it: simulate prints a Monitor deny as allow + mode monitor. */
function auditVerdict(c: SimulatedConnection): string {
  return c.mode === "monitor" && c.reason === "would-deny" ? "would-deny" : c.verdict;
}

for (const scenario of scenarios) {
  const dir = join(CORPUS, scenario.name);
  const recorded = existsSync(join(dir, "truth.json"));
  // A scenario added after the last recording is listed, with what to run, not failed.
  const todo = recorded ? undefined : `not recorded yet: sudo scripts/record-corpus scenarios ${scenario.name}`;
  test(`recorded scenario ${scenario.name}: simulate on its capture agrees with the live mesh`, { todo }, async (t) => {
    if (!recorded) return;
    const truth = JSON.parse(readFileSync(join(dir, "truth.json"), "utf8")) as ScenarioTruth;
    assert.equal(truth.scenario, scenario.name);
    assert.deepEqual(truth.pods, scenarioPodIps(scenario), "the pods the scenario declares now, at the addresses the recording gave them");
    const pods = parse(readFileSync(join(dir, "pods.yaml"), "utf8")) as { pods: { namespace: string; name: string; ips: string[] }[] };
    assert.deepEqual(pods.pods.map((p) => `${p.namespace}/${p.name} ${p.ips.join(",")}`), truth.pods.map((p) => `${p.key} ${p.ip}`));
    const connects = truth.steps.filter((s) => s.kind === "connect");
    assert.equal(connects.length, scenario.steps.filter((s) => s.kind === "connect").length, "every connect step is in the truth");
    assert.ok(truth.steps.every((s) => s.ok), "the recorded run met every expectation");
    const results = await simulateCapture({
      policyPaths: [join(dir, "policies.yaml")], podsFile: join(dir, "pods.yaml"), capture: readFileSync(join(dir, "capture.pcap")),
      trustedResolvers: [truth.resolver], log: silentLogger(),
    });
    const ipOf = new Map(truth.pods.map((p) => [p.key, p.ip]));
    for (const s of connects) {
      // Denied in on_new_connection: no SYN left the pod, so the capture has nothing to judge.
      if (!s.egret?.destination || !["allow", "alert", "would-deny"].includes(s.egret.verdict ?? "")) continue;
      const seen = results.filter((r) => r.server === s.egret!.destination && r.client.startsWith(`${ipOf.get(s.pod!)}:`));
      assert.ok(seen.length > 0, `${s.title}: the connection is in the capture`);
      // Allowed and alerted: the same rule let it through. A Monitor deny: the same verdict (its
      // reason can differ: see corpus/README.md, "what the scenario captures show").
      const same = (r: SimulatedConnection) => auditVerdict(r) === s.egret!.verdict && (s.egret!.verdict === "would-deny" || (r.rule ?? undefined) === (s.egret!.rule || undefined));
      assert.ok(seen.some(same), `${s.title}: the mesh said ${s.egret.verdict} (rule ${s.egret.rule ?? "-"}), simulate ${seen.map((r) => `${auditVerdict(r)}/${r.reason} rule ${r.rule ?? "-"}`).join(", ")}`);
      const differing = seen.filter((r) => same(r) && r.reason !== "would-deny" && r.reason !== s.egret!.reason);
      if (differing.length) t.diagnostic(`${s.title}: mesh reason ${s.egret.reason}, simulate ${differing.map((r) => r.reason).join(", ")}`);
      compared++;
    }
  });
}

test("the recorded scenarios compared simulate with the mesh on their forwarded connections", () => {
  assert.ok(scenarios.length >= 18, "the scenarios were found");
  // Unrecorded scenarios are listed as todos above; the recorded ones must have been compared.
  assert.ok(compared >= 25, `only ${compared} connections compared`);
});
