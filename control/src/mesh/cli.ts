// `egret mesh validate|run`: the scenario files and the mesh-in-a-box from the command line —
// the same loader and runner as `npm run test:e2e`, with progress printed as steps complete.
import { existsSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { DNS_MODES, loadScenarioDir, loadScenarioFile, ScenarioError, type DnsMode, type Scenario } from "./scenario.js";
import { loadWorld, MeshConfigError } from "./world.js";
import { meshUnavailableReason } from "./netns.js";
import { missingComponents, repoAt } from "./components.js";
import { ScenarioRunner, formatFailure } from "./runner.js";

export const MESH_USAGE = `usage: egret mesh validate [SCENARIO.yaml|FOLDER…]
       egret mesh run [--keep] [--dns-mode cluster-dns|dns-proxy|all] [SCENARIO.yaml|FOLDER…]

validate  checks scenario files (and the folder's world.yaml): every mistake with file:line:column
run       builds the mesh in a box (root; network namespaces egG*), runs the scenarios against
          egret control, agent and sidecars, prints each step, tears everything down
          --keep  keep the scratch directory (component logs, audit log) and print where it is
          --dns-mode  how pods resolve: cluster-dns (default, straight to the cluster resolver),
                  dns-proxy (Istio's DNS capture and istio-agent's DNS proxy in each sidecar
                  pod), or all (each scenario in every mode it applies to)
Default: istio-tests/scenarios/. Exit status: 0 all good, 1 a failure, 2 bad usage, 3 cannot run here.`;

export function repoRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "../../../..");
}

/** Scenarios from files and folders; throws ScenarioError with every problem. */
export function loadScenarios(paths: string[]): { scenarios: Scenario[]; worldFile: string } {
  const targets = paths.length ? paths : [join(repoRoot(), "istio-tests/scenarios")];
  const scenarios: Scenario[] = [];
  const problems: ScenarioError["problems"] = [];
  let worldFile = join(repoRoot(), "istio-tests/scenarios/world.yaml");
  for (const t of targets) {
    try {
      if (existsSync(t) && statSync(t).isDirectory()) {
        if (existsSync(join(t, "world.yaml"))) worldFile = join(t, "world.yaml");
        scenarios.push(...loadScenarioDir(t));
      } else {
        scenarios.push(loadScenarioFile(t));
      }
    } catch (e) {
      if (e instanceof ScenarioError) problems.push(...e.problems); else throw e;
    }
  }
  if (problems.length) throw new ScenarioError(problems);
  return { scenarios, worldFile };
}

export async function meshCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...args] = argv;
  const rest = [...args];
  const keep = rest.includes("--keep");
  const modeAt = rest.indexOf("--dns-mode");
  const modeText = modeAt >= 0 ? rest.splice(modeAt, 2)[1] : "cluster-dns";
  if (modeText !== "all" && !DNS_MODES.includes(modeText as DnsMode)) { out(`--dns-mode must be ${DNS_MODES.join(", ")} or all\n${MESH_USAGE}`); return 2; }
  const modes: DnsMode[] = modeText === "all" ? [...DNS_MODES] : [modeText as DnsMode];
  const paths = rest.filter((a) => a !== "--keep");
  if (sub !== "validate" && sub !== "run") { out(MESH_USAGE); return sub === "--help" || sub === "-h" ? 0 : 2; }
  const unknownFlag = paths.find((p) => p.startsWith("-"));
  if (unknownFlag) { out(`unknown option ${unknownFlag}\n${MESH_USAGE}`); return 2; }
  let loaded: { scenarios: Scenario[]; worldFile: string };
  let world;
  try {
    loaded = loadScenarios(paths);
    world = loadWorld(loaded.worldFile);
  } catch (e) {
    if (e instanceof ScenarioError || e instanceof MeshConfigError) { out(e.message); return 1; }
    throw e;
  }
  if (sub === "validate") {
    out(`${loaded.scenarios.length} scenario${loaded.scenarios.length === 1 ? "" : "s"} valid (world: ${loaded.worldFile})`);
    return 0;
  }
  const unavailable = await meshUnavailableReason("egG");
  if (unavailable) { out(`cannot run the mesh here: ${unavailable}`); return 3; }
  const repo = repoAt(repoRoot());
  const missing = missingComponents(repo);
  if (missing.length) { out(`cannot run the scenarios: ${missing.join("; ")}`); return 3; }
  const runner = await ScenarioRunner.start({
    prefix: "egG", world, repo, keepWorkDir: keep,
    onStep: (_s, r) => out(`  ${r.ok ? "ok  " : r.knownIssue ? `TODO (known issue: ${r.step.knownIssue})` : "FAIL"} ${r.step.title}: ${r.summary}`),
  });
  let failed = 0, skipped = 0, runs = 0;
  try {
    for (const s of loaded.scenarios) {
      for (const dnsMode of modes) {
        runs++;
        out(`scenario ${s.name} [${dnsMode}]${s.seed ? ` — ${s.seed}` : ""}`);
        const r = await runner.run(s, { dnsMode });
        if (r.skipped) { skipped++; out(`  SKIP ${r.skipped}`); continue; }
        if (!r.ok) { failed++; out(formatFailure(r).split("\n").filter((l) => !/^ {2}(ok {2}|FAIL|TODO) /.test(l)).join("\n")); }
      }
    }
  } finally {
    await runner.close();
  }
  out(`${runs - failed - skipped} of ${runs} scenario runs passed${skipped ? `, ${skipped} skipped (not applicable in that DNS mode)` : ""}${keep ? `; logs kept in ${runner.cluster.workDir}` : ""}`);
  return failed ? 1 : 0;
}
