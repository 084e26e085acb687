// Records the mesh scenarios (istio-tests/scenarios/*.yaml) into corpus/scenarios/<name>/ (root):
// each scenario runs exactly as the e2e tier runs it — pods behind the REDIRECT to their
// `egret sidecar`, `egret control` with the scenario's policies, `egret agent` — while tcpdump
// captures the outside namespace's interface: the pods' DNS and every connection that left a pod
// (a connection the sidecar denied in on_new_connection never sends a SYN, so it is not on the
// wire; the truth still lists it, with what its client saw).
//   node dist/control/src/corpus/scenarios.js [OUT_DIR] [NAME…]   (scripts/record-corpus scenarios)
// Writes per scenario: capture.pcap, pods.yaml (`egret simulate`/`egret learn` --pods), policies.yaml
// (the scenario's), truth.json (each step: what its client did and saw; `egret` = the verdict the
// live mesh's audit log gave, kept apart from what the client saw). A scenario whose run failed
// is reported and leaves its folder as it was.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { ScenarioRunner, formatFailure, type StepResult } from "../mesh/runner.js";
import { loadScenarioDir, type Scenario } from "../mesh/scenario.js";
import { loadWorld, type World } from "../mesh/world.js";
import { repoAt } from "../mesh/components.js";
import { POD_ADDRESS_BASE } from "../mesh/session.js";
import { TcpdumpCapture } from "../mesh/tcpdump.js";

export interface ScenarioStepTruth {
  title: string;
  kind: string;
  pod?: string;
  /** connect: the client program, where it went; resolve: the resolver client and the name. */
  client?: string;
  to?: string;
  port?: number;
  repeat?: number;
  /** What the client saw (connect: connected/refused; resolve: rcode and addresses), or what ran. */
  saw: string;
  command?: string;
  /** The step met its scenario's expectation in the recorded run. */
  ok: boolean;
  /** The live mesh's verdict for this connection, from control's audit log (Egret's decision). */
  egret?: { destination?: string; verdict?: string; reason?: string; policy?: string; rule?: string; names?: string[]; protocol?: string };
}

export interface ScenarioTruth {
  recordedBy: string;
  recordedAt: string;
  scenario: string;
  file: string;
  resolver: string;
  pods: { key: string; ip: string; sidecar: boolean }[];
  steps: ScenarioStepTruth[];
}

/** The address the session gives each pod (EgretSession: 198.18.1.<base + index>). */
export function scenarioPodIps(scenario: Scenario): { key: string; ip: string; sidecar: boolean }[] {
  return scenario.pods.map((p, i) => ({ key: p.key, ip: `198.18.1.${POD_ADDRESS_BASE + i}`, sidecar: p.sidecar !== false }));
}

/** pods.yaml in the format of `egret simulate --pods` (namespaces with labels, pods with ips). */
export function scenarioPodsYaml(scenario: Scenario): string {
  const ips = new Map(scenarioPodIps(scenario).map((p) => [p.key, p.ip]));
  return stringify({
    namespaces: Object.entries(scenario.namespaces).map(([name, v]) => ({ name, labels: v.labels })),
    pods: scenario.pods.map((p) => ({ name: p.name, namespace: p.namespace, labels: p.labels, ips: [ips.get(p.key)!] })),
  });
}

function stepTruth(r: StepResult): ScenarioStepTruth {
  const s = r.step;
  const base = { title: s.title, kind: s.kind, ok: r.ok };
  const a = r.audit;
  const egret = a ? { destination: a.destinationIp !== undefined ? `${a.destinationIp}:${a.destinationPort ?? "?"}` : undefined, verdict: a.verdict, reason: a.reason, policy: a.policy, rule: a.rule, names: a.names, protocol: a.protocol } : undefined;
  switch (s.kind) {
    case "connect":
      return { ...base, pod: s.pod, client: s.client, to: s.to, port: s.port, ...(s.repeat ? { repeat: s.repeat } : {}), saw: r.client?.outcome ?? r.summary, command: r.client?.command, ...(egret ? { egret } : {}) };
    case "resolve":
      return { ...base, pod: s.pod, client: s.with, to: s.name, saw: r.summary };
    case "udp":
      return { ...base, pod: s.pod, client: "udp", to: s.to, port: s.port, saw: r.summary };
    default:
      return { ...base, saw: r.summary, ...(egret ? { egret } : {}) };
  }
}

/** Runs one scenario under tcpdump; writes its folder only when the run met every expectation. */
async function recordOne(runner: ScenarioRunner, scenario: Scenario, out: string, root: string, world: World, scratch: string, say: (s: string) => void): Promise<boolean> {
  const pcap = join(scratch, `${scenario.name}.pcap`);
  const capture = await TcpdumpCapture.start(runner.cluster.net.outsideNs, "eth0", pcap);
  let result;
  try {
    result = await runner.run(scenario);
  } finally {
    await capture.stop();
  }
  if (!result.ok) {
    say(formatFailure(result));
    return false;
  }
  const dir = join(out, scenario.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "capture.pcap"), readFileSync(pcap));
  writeFileSync(join(dir, "pods.yaml"), scenarioPodsYaml(scenario));
  writeFileSync(join(dir, "policies.yaml"), scenario.policies.map((p) => stringify(p)).join("---\n"));
  const truth: ScenarioTruth = {
    recordedBy: "scripts/record-corpus scenarios (control/src/corpus/scenarios.ts)", recordedAt: new Date().toISOString(),
    scenario: scenario.name, file: relative(root, scenario.file), resolver: world.resolver,
    pods: scenarioPodIps(scenario), steps: result.steps.map(stepTruth),
  };
  writeFileSync(join(dir, "truth.json"), JSON.stringify(truth, null, 2) + "\n");
  say(`  ${scenario.name}: ${result.steps.length} steps, ${readFileSync(pcap).length} bytes captured`);
  return true;
}

/** Records every scenario of `scenarioDir` (or the named ones) into `out`; false if any failed. */
export async function recordScenarios(root: string, out: string, only: readonly string[], say: (s: string) => void): Promise<boolean> {
  const scenarioDir = join(root, "istio-tests/scenarios");
  const world = loadWorld(join(scenarioDir, "world.yaml"));
  const scenarios = loadScenarioDir(scenarioDir).filter((s) => only.length === 0 || only.includes(s.name));
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) throw new Error(`no scenario named ${unknown.join(", ")} in ${scenarioDir}`);
  const scratch = mkdtempSync(join(tmpdir(), "egret-corpus-scenarios-"));
  const runner = await ScenarioRunner.start({ prefix: "egQ", world, repo: repoAt(root) });
  let allOk = true;
  try {
    for (const s of scenarios) allOk = (await recordOne(runner, s, out, root, world, scratch, say)) && allOk;
  } finally {
    await runner.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  return allOk;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
  const [outArg, ...names] = process.argv.slice(2);
  const out = outArg ?? join(root, "corpus/scenarios");
  recordScenarios(root, out, names, (s) => console.log(s)).then((ok) => {
    console.log(ok ? `written: ${out}/<scenario>/` : "record-corpus scenarios: some scenarios failed (their folders were left as they were)");
    process.exitCode = ok ? 0 : 1;
  }, (e: Error) => { console.error(`record-corpus scenarios: ${e.message}`); process.exit(1); });
}
