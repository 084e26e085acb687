// Every scenario in istio-tests/scenarios/ against the whole chain on one machine, in one DNS mode:
// real DNS, real servers and clients, `egret control` + `egret agent` + one `egret sidecar` per
// pod behind an iptables REDIRECT (and, in dns-proxy mode, Istio's DNS capture with istio-agent's
// DNS proxy in each sidecar pod). Skips with the reason when the machine (root, ip netns,
// packages) or the tree (a component not written yet) cannot run it, and a scenario that cannot
// apply in this mode is skipped with the reason its file gives — never a silent pass.
// EGRET_MESH_SCENARIOS=name,name runs only those (says so in the output).
import { test, before, after } from "node:test";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadScenarioDir, type DnsMode } from "../../src/mesh/scenario.js";
import { loadWorld } from "../../src/mesh/world.js";
import { meshUnavailableReason } from "../../src/mesh/netns.js";
import { missingServerPrograms } from "../../src/mesh/services/index.js";
import { missingPrograms } from "../../src/mesh/services/programs.js";
import { CLIENT_PROGRAMS } from "../../src/mesh/clients.js";
import { missingComponents, repoAt } from "../../src/mesh/components.js";
import { ScenarioRunner, formatFailure } from "../../src/mesh/runner.js";

const PREFIX = "egG";

export async function scenarioSuite(dnsMode: DnsMode, label: string): Promise<void> {
  const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
  const scenarioDir = join(root, "istio-tests/scenarios");
  const world = loadWorld(join(scenarioDir, "world.yaml"));
  const only = (process.env.EGRET_MESH_SCENARIOS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const scenarios = loadScenarioDir(scenarioDir).filter((s) => only.length === 0 || only.includes(s.name));
  if (only.length) console.log(`# ${label}: only ${scenarios.map((s) => s.name).join(", ")} (EGRET_MESH_SCENARIOS)`);
  const repo = repoAt(root);

  const machine = await meshUnavailableReason(PREFIX);
  const programs = machine ? [] : [
    ...missingServerPrograms(["dns", ...world.services.map((s) => s.kind)]),
    ...missingPrograms(Object.values(CLIENT_PROGRAMS).flat()),
  ];
  const components = missingComponents(repo);
  const skip = machine ?? (programs.length ? `missing programs: ${programs.join(", ")}` : components.length ? `the chain is incomplete: ${components.join("; ")}` : undefined);
  if (skip) console.log(`# ${label}: ${scenarios.length} scenarios skipped — ${skip}`);

  let runner: ScenarioRunner | undefined;
  before(async () => { if (!skip) runner = await ScenarioRunner.start({ prefix: PREFIX, world, repo, dnsMode }); }, { timeout: 180_000 });
  after(async () => { await runner?.close(); });

  for (const scenario of scenarios) {
    test(`scenario ${scenario.name} [${dnsMode}]${scenario.seed ? ` — ${scenario.seed}` : ""}`, { skip, timeout: 300_000 }, async (t) => {
      const result = await runner!.run(scenario, { dnsMode });
      if (result.skipped) { t.skip(result.skipped); return; }
      for (const s of result.steps) t.diagnostic(`${s.ok ? "ok  " : s.knownIssue ? "TODO" : "FAIL"} ${s.step.title}: ${s.summary}`);
      if (!result.ok) throw new Error(formatFailure(result));
      // A known defect a scenario demonstrates shows up as TODO (visible, not failing the suite).
      for (const s of result.steps.filter((x) => x.knownIssue)) {
        await t.test(`known issue: ${s.step.title}`, { todo: s.step.knownIssue }, () => { throw new Error(s.detail ?? s.summary); });
      }
    });
  }
}
