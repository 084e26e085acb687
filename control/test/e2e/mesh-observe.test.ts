// `egret observe` and `egret status` against the mesh in a box, real processes only: the demo's
// pods make their real connections while `egret observe --follow --json` runs on the node (as an
// operator would, through control's authenticated API); every verdict control wrote to its audit
// log reaches the observer, exactly once and identical; a filtered observer gets exactly the
// matching ones; an operator limited to one namespace sees only it; `egret status --json` counts
// the connected filters, the agent and the denies by reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MeshCluster } from "../../src/mesh/cluster.js";
import { EgretSession } from "../../src/mesh/session.js";
import { meshUnavailableReason } from "../../src/mesh/netns.js";
import { missingComponents, operatorCommand, repoAt } from "../../src/mesh/components.js";
import { ManagedProcess } from "../../src/mesh/process.js";
import { run } from "../../src/mesh/exec.js";
import { webCaPath } from "../../src/mesh/services/index.js";
import { perform, tryObserving } from "../../src/demo/index.js";
import { DEMO_ACTIONS, DEMO_NAMESPACES, DEMO_POLICIES, DEMO_PODS, DEMO_WORLD } from "../../src/demo/story.js";

const PREFIX = "egG";
const root = join(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
const repo = repoAt(root);
const missing = missingComponents(repo);
const skip = (await meshUnavailableReason(PREFIX)) ?? (missing.length ? `the chain is incomplete: ${missing.join("; ")}` : undefined);
if (skip) console.log(`# mesh-observe: skipped — ${skip}`);

let cluster: MeshCluster | undefined;
let session: EgretSession | undefined;
let dir = "";
const observers: ManagedProcess[] = [];

before(async () => {
  if (skip) return;
  cluster = await MeshCluster.start({ prefix: PREFIX, world: DEMO_WORLD });
  dir = join(cluster.workDir, "observe");
  mkdirSync(dir, { recursive: true });
  session = await EgretSession.start(cluster, repo, { pods: DEMO_PODS, namespaces: DEMO_NAMESPACES, policies: DEMO_POLICIES }, dir);
  await session.awaitSidecarsConnected(30_000);
}, { timeout: 180_000 });

after(async () => {
  await Promise.all(observers.map((o) => o.stop()));
  await session?.stop();
  await cluster?.destroy();
});

/** `egret observe …` running on the node for the rest of the test; its output goes to a file. */
async function startObserver(name: string, extra: string[], tokenFile?: string): Promise<ManagedProcess> {
  const [cmd, args] = operatorCommand(cluster!.net, repo, { ...session!.files, ...(tokenFile ? { operatorToken: tokenFile } : {}) }, "observe", extra);
  const p = ManagedProcess.start({ name: `egret observe ${name}`, cmd, args, logFile: join(dir, `observe-${name}.out`) });
  observers.push(p);
  // Ready once control counts the stream (the follower subscribed before any connection is made).
  return p;
}

function jsonLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function controlObserveStreams(): Promise<number> {
  const r = await run("ip", ["netns", "exec", cluster!.net.nodeNs, "curl", "-fsS", "--max-time", "2", `http://${cluster!.net.gateway}:15014/metrics`], { timeoutMs: 5000 });
  return Number(/^egret_control_observe_streams (\d+)/m.exec(r.stdout)?.[1] ?? 0);
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("egret observe --follow shows every verdict of a mesh run, live and filtered; egret status sums it up", { skip, timeout: 240_000 }, async () => {
  const all = await startObserver("all", ["--follow", "--json"]);
  const denies = await startObserver("shop-denies", ["--follow", "--json", "--namespace", "shop", "--verdict", "deny"]);
  await waitFor(async () => (await controlObserveStreams()) === 2, "both observers to follow control", 30_000);

  const ca = webCaPath({ net: cluster!.net, world: DEMO_WORLD, workDir: cluster!.workDir });
  for (const action of DEMO_ACTIONS) {
    const row = await perform(session!, action, ca);
    assert.ok(row.entry, `control recorded a verdict for ${action.what}`);
  }
  const audit = () => readFileSync(session!.files.auditLog, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  const recorded = audit();
  assert.ok(recorded.length >= DEMO_ACTIONS.length, `${recorded.length} audit lines`);
  await waitFor(() => jsonLines(all.logFile).length >= recorded.length, `all ${recorded.length} verdicts at the observer`, 30_000);
  assert.deepEqual(jsonLines(all.logFile), audit(), "the observer saw exactly the audit log, in order");
  const shopDenies = audit().filter((r) => r.verdict === "deny" && String(r.pod).startsWith("shop/"));
  assert.ok(shopDenies.length >= 3, "the story has denies in shop");
  await waitFor(() => jsonLines(denies.logFile).length >= shopDenies.length, "the filtered observer", 30_000);
  assert.deepEqual(jsonLines(denies.logFile), shopDenies);
  all.assertRunning();

  // An operator limited to lab (a second line in control's operator token file) sees lab only.
  const labToken = join(dir, "lab-token");
  writeFileSync(labToken, "lab-operator-token-0123456789\n");
  writeFileSync(session!.files.operatorTokens!, `${readFileSync(session!.files.operatorTokens!, "utf8")}lab-operator-token-0123456789 lab lab-oncall\n`);
  const [cmd, args] = operatorCommand(cluster!.net, repo, { ...session!.files, operatorToken: labToken }, "observe", ["--json"]);
  const lab = await run(cmd, args, { timeoutMs: 30_000 });
  assert.equal(lab.code, 0, lab.stderr);
  const labLines = lab.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(labLines, audit().filter((r) => String(r.pod).startsWith("lab/")));
  const forbidden = await run(...operatorCommand(cluster!.net, repo, { ...session!.files, operatorToken: labToken }, "observe", ["--namespace", "shop"]), { timeoutMs: 30_000 });
  assert.equal(forbidden.code, 1);
  assert.match(forbidden.stderr, /PERMISSION_DENIED.*shop/);

  // The table (not a terminal: no colour).
  const table = await run(...operatorCommand(cluster!.net, repo, session!.files, "observe", ["--reason", "sni-unverified"]), { timeoutMs: 30_000 });
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^TIME +POD +DESTINATION +NAME +PROTOCOL +VERDICT +REASON +POLICY#RULE$/m);
  assert.match(table.stdout, /shop\/checkout +198\.19\.2\.30:443 +evil\.example\.net \(sni api\.example\.test\) +tls +deny +sni-unverified/);
  assert.doesNotMatch(table.stdout, /\u001b\[/);

  const status = await run(...operatorCommand(cluster!.net, repo, session!.files, "status", ["--json"]), { timeoutMs: 30_000 });
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as {
    replicas: { ready: boolean; leader: string }[];
    agents: { node: string; captureDrops: number }[];
    filters: { namespace: string; connectedPods: number; selectedPods: number; policySelectedPods: number }[];
    notEnforced: unknown[];
    policies: { name: string; ready: boolean; mode: string }[];
    denies: { namespace: string; verdict: string; reason: string; count: number }[];
  };
  assert.deepEqual(s.replicas.map((r) => [r.ready, r.leader]), [[true, "unknown"]]);
  assert.equal(s.agents.length, 1);
  assert.equal(s.agents[0]!.node, `${cluster!.net.prefix.toLowerCase()}-node`);
  assert.deepEqual(s.filters.map((f) => [f.namespace, f.connectedPods, f.selectedPods, f.policySelectedPods]), [["lab", 1, 1, 1], ["shop", 1, 1, 1]]);
  assert.deepEqual(s.notEnforced, [], "every selected pod has its filter connected");
  assert.deepEqual(s.policies.map((p) => [p.name, p.ready, p.mode]).sort(), [["checkout-egress", true, "enforce"], ["lab-rollout", true, "monitor"]]);
  const expected = new Map<string, number>();
  for (const r of audit()) if (r.verdict === "deny" || r.verdict === "would-deny") {
    const key = `${String(r.pod).split("/")[0]} ${r.verdict} ${r.reason}`;
    expected.set(key, (expected.get(key) ?? 0) + 1);
  }
  assert.deepEqual(new Map(s.denies.map((d) => [`${d.namespace} ${d.verdict} ${d.reason}`, d.count])), expected);
  assert.match(tryObserving(session!), /sudo ip netns exec \S+-node node \S+egret\.js observe --control \S+:15010 --token-file \S+ --follow/);
});
